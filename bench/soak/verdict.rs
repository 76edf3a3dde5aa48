//! The verdicts' limits and the PASS/FAIL lines.

use crate::run::Run;
use crate::shared::Shared;
use crate::support::format::{kib_as_mib as mib, thousands};
use crate::support::verdict::{Verdict, Verdicts};
use crate::Args;
use std::sync::atomic::Ordering;

/// The verdicts' limits.
const FD_SLACK: u64 = 2;
const RSS_GROWTH_LIMIT_KIB: u64 = 1024;

/// The run judged against the limits.
pub fn judge(args: &Args, run: &Run) -> Verdicts {
    let shared = &run.shared;
    let mut out = Vec::new();
    let rest_errors = Shared::total(&shared.rest_errors);
    let socketio_errors = Shared::total(&shared.socketio_errors);
    let push_errors = Shared::total(&shared.push_errors);
    let errors = rest_errors + socketio_errors + push_errors;
    out.push(Verdict {
        pass: errors == 0,
        fails_exit: true,
        text: format!(
            "unintended errors = 0: {} ({} REST, {} Socket.IO, {} push)",
            thousands(errors),
            thousands(rest_errors),
            thousands(socketio_errors),
            push_errors
        ),
    });

    let pushed = shared.next_n.load(Ordering::SeqCst);
    let lost: u64 = run
        .steady
        .iter()
        .map(|s| pushed.saturating_sub(s.distinct) + s.seq_skipped)
        .sum();
    let disordered: u64 = run
        .steady
        .iter()
        .map(|s| s.out_of_order + s.seq_backwards + s.duplicates)
        .sum();
    let gaps: usize = run.steady.iter().map(|s| s.gap_events.len()).sum();
    let complete = run.steady.len() == args.steady_clients && run.drained;
    out.push(Verdict {
        pass: lost == 0 && disordered == 0 && gaps == 0 && complete,
        fails_exit: true,
        text: format!(
            "notifications lost or out of order for the {} steady clients = 0: {} lost (pushed ones missing + sequence numbers skipped), {} out of order or twice, {} gap event(s); {}",
            args.steady_clients,
            thousands(lost),
            thousands(disordered),
            gaps,
            if run.drained {
                format!("all {} pushed received {:.2} s after the last push", thousands(pushed), run.drain_secs)
            } else {
                format!("not all received after {:.1} s of drain", run.drain_secs)
            }
        ),
    });

    match (
        run.timeline.checkpoints.first(),
        run.timeline.checkpoints.last(),
    ) {
        (Some(first), Some(last)) => {
            let note = if run.timeline.checkpoints.len() == 1 {
                " (one minute only: the first checkpoint is the last, nothing to compare)"
            } else {
                ""
            };
            let stragglers = if first.churn_connected + last.churn_connected > 0 {
                format!(
                    "; churning clients still connected at the checkpoints: {} and {}",
                    first.churn_connected, last.churn_connected
                )
            } else {
                String::new()
            };
            out.push(Verdict {
                pass: last.sample.fds <= first.sample.fds + FD_SLACK,
                fails_exit: true,
                text: format!(
                    "fds at the end <= fds after the first minute + {FD_SLACK}: {} at minute {}'s checkpoint, {} at minute 1's{note}{stragglers}",
                    last.sample.fds,
                    last.minute + 1,
                    first.sample.fds
                ),
            });
            let growth = last.sample.rss_kib as i64 - first.sample.rss_kib as i64;
            out.push(Verdict {
                pass: growth < RSS_GROWTH_LIMIT_KIB as i64,
                fails_exit: args.strict_memory,
                text: format!(
                    "RSS growth after the first minute < 1 MiB: {} ({} MiB at minute {}'s checkpoint, {} MiB at minute 1's){note}{}",
                    signed_kib(growth),
                    mib(last.sample.rss_kib),
                    last.minute + 1,
                    mib(first.sample.rss_kib),
                    if args.strict_memory { "" } else { " (fails the exit status only with --strict-memory)" }
                ),
            });
        }
        _ => out.push(Verdict {
            pass: false,
            fails_exit: true,
            text: "fds and RSS: no checkpoint was taken (the run stopped in its first minute)"
                .to_string(),
        }),
    }

    out.push(Verdict {
        pass: run.fatal.is_none() && run.violations.is_empty(),
        fails_exit: true,
        text: format!(
            "the plugin ran the whole time without breaking lightningd's protocol: {}",
            match (&run.fatal, run.violations.len()) {
                (None, 0) => "yes".to_string(),
                (Some(fatal), n) => format!("no: {fatal}; {n} protocol violation(s)"),
                (None, n) => format!("{n} protocol violation(s)"),
            }
        ),
    });
    Verdicts(out)
}

pub fn signed_kib(delta: i64) -> String {
    format!("{delta:+} KiB ({:+.2} MiB)", delta as f64 / 1024.0)
}
