//! A command's output as it arrives, in bounded memory. Every exec path (a
//! container's nsenter pipe, a micro-VM's serial console) reads through
//! one, so nothing queues what a command writes: an endless one costs the
//! agent at most `MAX_KEPT` however long it runs.
//!
//! Kept (ExecNode, experiments, command faults): the first and the last
//! half of the budget are kept, the middle is read, counted and dropped.
//! The tail is what a failing command's error is in, and what a check's
//! last line comes from. Streamed (ExecNodeStream): every byte is handed
//! to the reader as it comes and none is kept.

use std::collections::VecDeque;

use dclab_spec::units::bytes;

/// What an exec result keeps at most, summed over its nodes.
pub const MAX_KEPT: usize = 64 * 1024;

/// Where a streamed exec's output goes.
pub trait Forward: Send {
    /// Hands `data` on, waiting while the reader is slow, up to the exec's
    /// deadline.
    fn forward(&mut self, data: &[u8]) -> Forwarded;
    /// Whether the reader went away (asked while the command is silent).
    fn gone(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    Sent,
    /// The deadline passed while the reader was slow: not delivered.
    Late,
    Gone,
}

pub struct CommandOutput {
    head: Vec<u8>,
    head_max: usize,
    tail: VecDeque<u8>,
    tail_max: usize,
    /// Bytes the command wrote.
    total: u64,
    /// Streamed bytes not delivered.
    late: u64,
    forward: Option<Box<dyn Forward>>,
    gone: bool,
}

impl CommandOutput {
    /// Keeps the first and last `budget / 2` bytes.
    pub fn kept(budget: usize) -> CommandOutput {
        let head_max = budget / 2;
        CommandOutput {
            head: Vec::new(),
            head_max,
            tail: VecDeque::new(),
            tail_max: budget - head_max,
            total: 0,
            late: 0,
            forward: None,
            gone: false,
        }
    }

    /// Hands everything to `forward`, keeps nothing.
    pub fn streamed(forward: Box<dyn Forward>) -> CommandOutput {
        CommandOutput {
            forward: Some(forward),
            ..CommandOutput::kept(0)
        }
    }

    /// Takes what the command wrote; false once the reader of a streamed
    /// exec went away (the caller then stops the command).
    pub fn push(&mut self, mut data: &[u8]) -> bool {
        if data.is_empty() {
            return !self.gone;
        }
        self.total += data.len() as u64;
        if let Some(forward) = self.forward.as_mut() {
            match forward.forward(data) {
                Forwarded::Sent => {}
                Forwarded::Late => self.late += data.len() as u64,
                Forwarded::Gone => self.gone = true,
            }
            return !self.gone;
        }
        let to_head = (self.head_max - self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..to_head]);
        data = &data[to_head..];
        if data.len() >= self.tail_max {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_max..]);
        } else {
            self.tail.extend(data);
            let over = self.tail.len().saturating_sub(self.tail_max);
            self.tail.drain(..over);
        }
        true
    }

    pub fn is_streamed(&self) -> bool {
        self.forward.is_some()
    }

    /// Whether the reader of a streamed exec went away.
    pub fn reader_gone(&mut self) -> bool {
        if !self.gone {
            self.gone = self.forward.as_ref().is_some_and(|f| f.gone());
        }
        self.gone
    }

    /// Bytes the command wrote.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes of output the result leaves out: the middle of a kept one,
    /// what a streamed one could not deliver.
    pub fn dropped(&self) -> u64 {
        match self.forward {
            Some(_) => self.late,
            None => self.total - (self.head.len() + self.tail.len()) as u64,
        }
    }

    /// What is kept, with a line where the middle was cut.
    pub fn text(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let dropped = self.dropped();
        if dropped == 0 || self.forward.is_some() {
            let mut all = self.head.clone();
            all.extend(tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        format!(
            "{}\n[output clipped: {} discarded here]\n{}",
            String::from_utf8_lossy(&self.head),
            bytes(dropped),
            String::from_utf8_lossy(&tail)
        )
    }

    /// "; it wrote 3.9 GiB of output, 3.9 GiB of it discarded", for the
    /// error of a command that failed; empty when nothing was cut.
    pub fn failure_note(&self) -> String {
        match self.dropped() {
            0 => String::new(),
            dropped => format!(
                "; it wrote {} of output, {} of it discarded",
                bytes(self.total),
                bytes(dropped)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_the_budget_is_kept_whole() {
        let mut out = CommandOutput::kept(16);
        for piece in [&b"hello "[..], b"", b"world", b"!\n"] {
            assert!(out.push(piece));
        }
        assert_eq!(out.text(), "hello world!\n");
        assert_eq!(out.dropped(), 0);
        assert_eq!(out.failure_note(), "");
    }

    #[test]
    fn a_long_output_keeps_its_first_and_last_halves_and_says_how_much_was_cut() {
        let mut out = CommandOutput::kept(MAX_KEPT);
        out.push(b"first line\n");
        let zeros = vec![0u8; 100_000];
        for _ in 0..1000 {
            out.push(&zeros);
        }
        out.push(b"\nlast line\n");
        let written = 11 + 100_000_000 + 11;
        assert_eq!(out.total(), written);
        assert_eq!(out.dropped(), written - MAX_KEPT as u64);
        let text = out.text();
        assert!(text.starts_with("first line\n\0"), "{:?}", &text[..20]);
        assert!(text.ends_with("\0\nlast line\n"));
        assert!(text.contains("\n[output clipped: 95.3 MiB discarded here]\n"));
        assert!(text.len() < MAX_KEPT + 100, "{}", text.len());
        assert_eq!(
            out.failure_note(),
            "; it wrote 95.4 MiB of output, 95.3 MiB of it discarded"
        );
    }

    #[test]
    fn the_tail_follows_pieces_smaller_and_larger_than_itself() {
        let mut out = CommandOutput::kept(8);
        out.push(b"abcd");
        out.push(b"efghijklmn");
        assert_eq!(
            String::from_utf8_lossy(&out.tail.iter().copied().collect::<Vec<_>>()),
            "klmn"
        );
        out.push(b"op");
        assert!(out.text().ends_with("here]\nmnop"), "{}", out.text());
        assert!(out.text().starts_with("abcd\n"));
        assert_eq!(out.dropped(), 16 - 8);
    }

    struct Reader {
        got: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        answer: Forwarded,
    }

    impl Forward for Reader {
        fn forward(&mut self, data: &[u8]) -> Forwarded {
            self.got.lock().unwrap().extend_from_slice(data);
            self.answer
        }
        fn gone(&self) -> bool {
            self.answer == Forwarded::Gone
        }
    }

    #[test]
    fn a_streamed_output_is_handed_on_whole_and_kept_nowhere() {
        let got = std::sync::Arc::default();
        let mut out = CommandOutput::streamed(Box::new(Reader {
            got: std::sync::Arc::clone(&got),
            answer: Forwarded::Sent,
        }));
        let big = vec![7u8; 3 * MAX_KEPT];
        assert!(out.push(&big));
        assert_eq!(got.lock().unwrap().len(), 3 * MAX_KEPT);
        assert_eq!((out.dropped(), out.text().len()), (0, 0));
        assert!(!out.reader_gone());

        let mut late = CommandOutput::streamed(Box::new(Reader {
            got: std::sync::Arc::default(),
            answer: Forwarded::Late,
        }));
        assert!(late.push(b"slow"));
        assert_eq!(late.dropped(), 4);

        let mut gone = CommandOutput::streamed(Box::new(Reader {
            got: std::sync::Arc::default(),
            answer: Forwarded::Gone,
        }));
        assert!(gone.reader_gone());
        assert!(!gone.push(b"x"));
    }
}
