//! `ctl port ls | head` ends quietly, as other command-line tools do.
//!
//! SIGPIPE stays ignored (Rust's default): with its default action, a write
//! to any socket whose peer died killed ctl without a word (exit 141), which
//! took down `ctl bench control-plane` when it restarted its coordinator
//! under the simulated agents. A closed pipe is then an error on the write;
//! Rust's print macros turn that into a panic, which this hook ends as a
//! quiet exit instead. Other panics still print as they always did.

/// The message std's print macros panic with when stdout is gone.
const CLOSED_STDOUT: &str = "failed printing to stdout";

pub fn end_quietly() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout(panic_message(info.payload())) {
            std::process::exit(0);
        }
        report(info);
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
}

fn is_closed_stdout(message: &str) -> bool {
    message.starts_with(CLOSED_STDOUT) && message.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_is_ended_quietly() {
        assert!(is_closed_stdout(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device"
        ));
        assert!(!is_closed_stdout("index out of bounds"));
    }
}
