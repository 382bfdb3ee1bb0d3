//! Reading the micro-VM's serial protocol (see the module doc of `image`)
//! in bounded memory: a console may send anything, without a newline for
//! ever (`cat /dev/zero`), so no line or output is buffered whole.

use std::collections::VecDeque;

/// Longer lines are cut: no marker line comes near it.
const MAX_LINE: usize = 256;
/// How many console lines to keep for error messages.
const RECENT_LINES: usize = 20;
/// Longest exit code text ("-2147483648").
const MAX_CODE: usize = 11;

/// Complete lines of what the console sends (without CR/LF, each cut to
/// `MAX_LINE` bytes), and the last few of them for error messages.
#[derive(Default)]
pub struct Lines {
    current: Vec<u8>,
    recent: VecDeque<String>,
    /// The last line ended in CR LF.
    crlf: bool,
}

impl Lines {
    /// Takes one byte; returns the line it completes.
    pub fn push(&mut self, byte: u8) -> Option<String> {
        if byte != b'\n' {
            if self.current.len() < MAX_LINE {
                self.current.push(byte);
            }
            return None;
        }
        self.crlf = self.current.last() == Some(&b'\r');
        let line = String::from_utf8_lossy(&self.current)
            .trim_end_matches('\r')
            .to_string();
        self.current.clear();
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.clone());
        Some(line)
    }

    /// "; last console lines: ..." for an error message.
    pub fn recent_text(&self) -> String {
        if self.recent.is_empty() {
            return "; nothing received on the console".to_string();
        }
        let lines: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        format!("; last console lines:\n  {}", lines.join("\n  "))
    }
}

/// One command's answer: `DCLAB-BEGIN <id>`, the output, then a newline
/// and `DCLAB-END <id> <code>`. That newline is the loop's, not the
/// output's, so the output comes through byte for byte.
///
/// A guest booted from an image of before that (a lab that ran across an
/// agent upgrade) ends lines in CR LF and its output in a newline of its
/// own; its begin line's CR tells it apart, and its output is taken as
/// it was then: lines in LF, the last newline kept.
pub struct Answer {
    begin: String,
    /// `DCLAB-END <id> `
    end: Vec<u8>,
    state: State,
    /// A newline and what follows it while it may still be the end line.
    held: Vec<u8>,
    /// The held newline is the begin line's, not output: a guest whose
    /// loop predates the newline before `DCLAB-END` ends an empty output
    /// right after the begin line.
    held_begin: bool,
    /// An older guest's answer (see above).
    crlf: bool,
    /// An older guest's CR, until the next byte shows whether it ends a line.
    cr: bool,
}

#[derive(Debug, PartialEq)]
enum State {
    Before,
    Output,
    Done(i32),
}

/// Whether held bytes (after their newline) can be the end line.
enum Match {
    Prefix,
    End(i32),
    No,
}

impl Answer {
    pub fn new(id: &str) -> Answer {
        Answer {
            begin: format!("DCLAB-BEGIN {id}"),
            end: format!("DCLAB-END {id} ").into_bytes(),
            state: State::Before,
            held: Vec::new(),
            held_begin: false,
            crlf: false,
            cr: false,
        }
    }

    /// Whether the output began (the begin line came).
    pub fn began(&self) -> bool {
        self.state != State::Before
    }

    /// The exit code, once the end line came.
    pub fn code(&self) -> Option<i32> {
        match self.state {
            State::Done(code) => Some(code),
            _ => None,
        }
    }

    /// Takes what the console sent: lines before the output go to `lines`,
    /// the output to `output` (in pieces). Stops at the end line; what
    /// follows it is not ours.
    pub fn feed(&mut self, data: &[u8], lines: &mut Lines, output: &mut Vec<u8>) {
        for &byte in data {
            match self.state {
                State::Before => {
                    if lines.push(byte).is_some_and(|line| line == self.begin) {
                        self.state = State::Output;
                        self.held = vec![b'\n'];
                        self.held_begin = true;
                        self.crlf = lines.crlf;
                    }
                }
                State::Output if self.crlf => self.crlf_byte(byte, output),
                State::Output => self.output_byte(byte, output),
                State::Done(_) => return,
            }
        }
    }

    /// Lets a newline held as the possible start of the end line go to
    /// `output` (a streamed line shows at once). An end line that comes
    /// after all is still recognized; the newline it began with then
    /// stays in the output.
    pub fn release_newline(&mut self, output: &mut Vec<u8>) {
        if self.state == State::Output && self.held == b"\n" && !self.held_begin {
            output.push(b'\n');
            self.held_begin = true;
        }
    }

    fn output_byte(&mut self, byte: u8, output: &mut Vec<u8>) {
        if self.held.is_empty() {
            if byte == b'\n' {
                self.held.push(byte);
            } else {
                output.push(byte);
            }
            return;
        }
        self.held.push(byte);
        match self.end_match() {
            Match::Prefix => {}
            Match::End(code) => {
                // An older guest's last newline was its output's.
                if self.crlf && !self.held_begin {
                    output.push(b'\n');
                }
                self.held.clear();
                self.state = State::Done(code);
            }
            Match::No => {
                // Only the last byte can be a newline: any before it would
                // have ended the match already. It may begin the end line.
                let last = self.held.pop().expect("held a byte");
                if std::mem::take(&mut self.held_begin) {
                    self.held.remove(0);
                }
                output.append(&mut self.held);
                if last == b'\n' {
                    self.held.push(last);
                } else {
                    output.push(last);
                }
            }
        }
    }

    /// An older guest's output byte: CR LF is LF.
    fn crlf_byte(&mut self, byte: u8, output: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr) && byte != b'\n' {
            self.output_byte(b'\r', output);
        }
        if byte == b'\r' && self.held.len() <= 1 {
            self.cr = true;
        } else {
            self.output_byte(byte, output);
        }
    }

    fn end_match(&self) -> Match {
        let candidate = &self.held[1..];
        let fixed = self.end.len();
        if candidate.len() <= fixed {
            return if self.end.starts_with(candidate) {
                Match::Prefix
            } else {
                Match::No
            };
        }
        if !candidate.starts_with(&self.end) {
            return Match::No;
        }
        let rest = &candidate[fixed..];
        if let Some(code) = rest.strip_suffix(b"\n") {
            let code = code.strip_suffix(b"\r").unwrap_or(code);
            return match std::str::from_utf8(code).ok().and_then(|c| c.parse().ok()) {
                Some(code) => Match::End(code),
                None => Match::No,
            };
        }
        let code = rest.strip_suffix(b"\r").unwrap_or(rest);
        if code.len() <= MAX_CODE && code.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
            Match::Prefix
        } else {
            Match::No
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `step` bytes.
    fn answer(id: &str, data: &[u8], step: usize) -> (Option<i32>, Vec<u8>, Lines) {
        let (mut a, mut lines, mut out) = (Answer::new(id), Lines::default(), Vec::new());
        for piece in data.chunks(step) {
            a.feed(piece, &mut lines, &mut out);
        }
        (a.code(), out, lines)
    }

    #[test]
    fn output_comes_through_byte_for_byte_whatever_the_pieces() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"hello\n", b"hello\n"),
            (b"no newline", b"no newline"),
            (b"", b""),
            (b"\n\n", b"\n\n"),
            // Look-alikes of the end line are output.
            (
                b"x\nDCLAB-END other 0\nDCLAB-END s-1 x\n",
                b"x\nDCLAB-END other 0\nDCLAB-END s-1 x\n",
            ),
            (b"\0\0\r\n\0", b"\0\0\r\n\0"),
        ];
        for (output, want) in cases {
            let mut data = b"junk\nDCLAB-BEGIN s-0\nlate output\nDCLAB-BEGIN s-1\n".to_vec();
            data.extend_from_slice(output);
            data.extend_from_slice(b"\nDCLAB-END s-1 3\r\nafter");
            for step in [1, 2, 7, 4096] {
                let (code, out, _) = answer("s-1", &data, step);
                assert_eq!(code, Some(3), "{output:?} in pieces of {step}");
                assert_eq!(out, want, "{output:?} in pieces of {step}");
            }
        }
    }

    #[test]
    fn an_older_loop_is_understood_as_it_was() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"", b""),
            (b"hi\r\n", b"hi\n"),
            (b"a\r\n\r\nb\rc\r\n", b"a\n\nb\rc\n"),
            (b"x\r\nDCLAB-END other 1\r\n", b"x\nDCLAB-END other 1\n"),
        ];
        for (output, want) in cases {
            let mut data = b"DCLAB-BEGIN o\r\n".to_vec();
            data.extend_from_slice(output);
            data.extend_from_slice(b"DCLAB-END o 2\r\n");
            for step in [1, 3, 4096] {
                let (code, out, _) = answer("o", &data, step);
                assert_eq!(
                    (code, out.as_slice()),
                    (Some(2), want),
                    "{output:?} in pieces of {step}"
                );
            }
        }
    }

    #[test]
    fn a_released_newline_is_output_and_the_end_line_still_ends_it() {
        let (mut a, mut lines, mut out) = (Answer::new("r"), Lines::default(), Vec::new());
        a.feed(b"DCLAB-BEGIN r\na\n", &mut lines, &mut out);
        assert_eq!(out, b"a");
        a.release_newline(&mut out);
        a.release_newline(&mut out);
        assert_eq!(out, b"a\n");
        a.feed(b"b\n", &mut lines, &mut out);
        a.release_newline(&mut out);
        a.feed(b"DCLAB-END r 0\n", &mut lines, &mut out);
        assert_eq!((a.code(), out), (Some(0), b"a\nb\n".to_vec()));
        // A newline held with more after it is not let go.
        let (mut a, mut out) = (Answer::new("r"), Vec::new());
        a.feed(b"DCLAB-BEGIN r\nx\nDCLAB-E", &mut lines, &mut out);
        a.release_newline(&mut out);
        a.feed(b"ND r 1\n", &mut lines, &mut out);
        assert_eq!((a.code(), out), (Some(1), b"x".to_vec()));
    }

    #[test]
    fn negative_and_unfinished_end_lines() {
        assert_eq!(
            answer("a", b"DCLAB-BEGIN a\nout\nDCLAB-END a -1\n", 3).0,
            Some(-1)
        );
        let (code, out, _) = answer("a", b"DCLAB-BEGIN a\nout\nDCLAB-END a 1", 5);
        assert_eq!((code, out), (None, b"out".to_vec()));
    }

    #[test]
    fn endless_output_without_a_newline_is_never_held() {
        let (mut a, mut lines, mut out) = (Answer::new("z"), Lines::default(), Vec::new());
        a.feed(b"DCLAB-BEGIN z\n", &mut lines, &mut out);
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..100 {
            a.feed(&zeros, &mut lines, &mut out);
            assert_eq!(out.len(), zeros.len(), "all of it handed on at once");
            assert!(a.held.is_empty());
            out.clear();
        }
        assert!(a.code().is_none());
    }

    #[test]
    fn long_lines_are_cut_and_only_the_last_lines_kept() {
        let mut lines = Lines::default();
        for _ in 0..3 * MAX_LINE {
            assert!(lines.push(b'x').is_none());
        }
        assert_eq!(lines.push(b'\n').unwrap().len(), MAX_LINE);
        for i in 0..100 {
            for b in format!("line {i}\r\n").bytes() {
                lines.push(b);
            }
        }
        let text = lines.recent_text();
        assert!(text.ends_with("line 99") && !text.contains("line 79\n"), "{text}");
    }
}
