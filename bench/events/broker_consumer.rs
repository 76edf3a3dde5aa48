//! The AMQP consumer (`--amqp`): an amqprs client of the private RabbitMQ server that declares
//! the exchange as the plugin would create it (a durable topic exchange), a durable queue
//! bound to it with the routing key `invoice_creation`, and consumes from it, acknowledging
//! each message after recording it into [`Arrivals`] (the body is the same JSON a webhook
//! receives, with `payload.bench_n` and `payload.sent_ns`).

use crate::arrivals::Arrivals;
use amqprs::callbacks::{DefaultChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use std::sync::Arc;

/// The queue the consumer declares (durable, as docs/broker.md advises).
const QUEUE: &str = "clnrest-bench";
/// The topic the bench pushes.
const ROUTING_KEY: &str = "invoice_creation";
/// Unacknowledged messages the broker may have sent ahead.
const PREFETCH: u16 = 1000;

pub struct BrokerConsumer {
    /// Kept open while the consumer runs.
    _connection: Connection,
    task: tokio::task::JoinHandle<()>,
}

impl BrokerConsumer {
    /// Connects as `guest` to 127.0.0.1:`port`, binds the queue to `exchange` and consumes
    /// until dropped.
    pub async fn start(
        port: u16,
        exchange: &str,
        arrivals: Arc<Arrivals>,
    ) -> Result<BrokerConsumer, String> {
        let failed = |what: &str, e: amqprs::error::Error| format!("AMQP consumer: {what}: {e}");
        let arguments = OpenConnectionArguments::new("127.0.0.1", port, "guest", "guest");
        let connection = Connection::open(&arguments)
            .await
            .map_err(|e| failed("connect", e))?;
        connection
            .register_callback(DefaultConnectionCallback)
            .await
            .map_err(|e| failed("connection callback", e))?;
        let channel = connection
            .open_channel(None)
            .await
            .map_err(|e| failed("open a channel", e))?;
        channel
            .register_callback(DefaultChannelCallback)
            .await
            .map_err(|e| failed("channel callback", e))?;
        channel
            .exchange_declare(
                ExchangeDeclareArguments::new(exchange, "topic")
                    .durable(true)
                    .finish(),
            )
            .await
            .map_err(|e| failed("declare the exchange", e))?;
        channel
            .queue_declare(QueueDeclareArguments::durable_client_named(QUEUE))
            .await
            .map_err(|e| failed("declare the queue", e))?;
        channel
            .queue_bind(QueueBindArguments::new(QUEUE, exchange, ROUTING_KEY))
            .await
            .map_err(|e| failed("bind the queue", e))?;
        channel
            .basic_qos(BasicQosArguments::new(0, PREFETCH, false))
            .await
            .map_err(|e| failed("set the prefetch", e))?;
        let (_, messages) = channel
            .basic_consume_rx(BasicConsumeArguments::new(QUEUE, "clnrest-bench"))
            .await
            .map_err(|e| failed("consume", e))?;
        let task = tokio::spawn(consume(channel, messages, arrivals));
        Ok(BrokerConsumer {
            _connection: connection,
            task,
        })
    }
}

impl Drop for BrokerConsumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn consume(
    channel: Channel,
    mut messages: tokio::sync::mpsc::UnboundedReceiver<amqprs::channel::ConsumerMessage>,
    arrivals: Arc<Arrivals>,
) {
    while let Some(message) = messages.recv().await {
        match &message.content {
            Some(body) => arrivals.record_body(body),
            None => arrivals.record_unreadable(),
        }
        if let Some(deliver) = &message.deliver {
            let ack = BasicAckArguments::new(deliver.delivery_tag(), false);
            if channel.basic_ack(ack).await.is_err() {
                return;
            }
        }
    }
}
