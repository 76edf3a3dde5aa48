//! Websocket frames as the tests' hand-made clients write them (RFC 6455: a client's frames
//! are masked) and read the server's.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A frame as read off the wire.
pub struct Frame {
    /// The FIN bit: the last fragment of a message.
    pub fin: bool,
    pub opcode: u8,
    /// The MASK bit (a server must not set it).
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Reads one frame (a server's: its payload is taken as it is, unmasked).
pub async fn read(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Frame> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await?;
            u16::from_be_bytes(ext) as usize
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await?;
            u64::from_be_bytes(ext) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Frame {
        fin: head[0] & 0x80 != 0,
        opcode: head[0] & 0x0f,
        masked: head[1] & 0x80 != 0,
        payload,
    })
}

/// A final frame with `opcode` carrying `payload`, masked with a fixed key.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
