//! The events of the `dclab_progress` callback (playbooks/callback_plugins):
//! a line per play and host as each play ends, the first failure, and the
//! time of each chapter (a play named "chapter | what" belongs to chapter).

use std::collections::BTreeMap;

use serde::Deserialize;

/// What starts an event line; every other line is Ansible's own output.
pub const MARK: &str = "\x1edclab ";

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Play {
        play: String,
        time: f64,
    },
    Result {
        status: String,
        play: Option<String>,
        task: String,
        host: String,
        changed: bool,
        msg: String,
    },
    Stats {
        time: f64,
    },
}

/// Counts of one host in one play.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostCounts {
    pub ok: u32,
    pub changed: u32,
    pub skipped: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub host: String,
    pub play: String,
    pub task: String,
    pub msg: String,
}

#[derive(Debug, Default)]
pub struct Progress {
    play: Option<(String, f64)>,
    hosts: BTreeMap<String, HostCounts>,
    /// (chapter, seconds) in the order chapters first ran.
    pub chapters: Vec<(String, f64)>,
    pub changed: u32,
    pub failure: Option<Failure>,
}

pub fn chapter_of(play: &str) -> &str {
    play.split_once(" | ").map_or(play, |(c, _)| c).trim()
}

impl Progress {
    /// Takes one event; returns the lines to show.
    pub fn take(&mut self, event: Event) -> Vec<String> {
        match event {
            Event::Play { play, time } => {
                let lines = self.end_play(time);
                self.play = Some((play, time));
                lines
            }
            Event::Result {
                status,
                play,
                task,
                host,
                changed,
                msg,
                ..
            } => {
                let counts = self.hosts.entry(host.clone()).or_default();
                match status.as_str() {
                    "ok" if changed => counts.changed += 1,
                    "ok" | "ignored" => counts.ok += 1,
                    "skipped" => counts.skipped += 1,
                    _ => counts.failed += 1,
                }
                self.changed += u32::from(changed && status == "ok");
                if matches!(status.as_str(), "failed" | "unreachable") && self.failure.is_none() {
                    self.failure = Some(Failure {
                        host,
                        play: play.unwrap_or_default(),
                        task,
                        msg,
                    });
                }
                Vec::new()
            }
            Event::Stats { time } => self.end_play(time),
        }
    }

    fn end_play(&mut self, now: f64) -> Vec<String> {
        let Some((play, started)) = self.play.take() else {
            return Vec::new();
        };
        let seconds = (now - started).max(0.0);
        let chapter = chapter_of(&play).to_string();
        match self.chapters.iter_mut().find(|(c, _)| *c == chapter) {
            Some((_, total)) => *total += seconds,
            None => self.chapters.push((chapter, seconds)),
        }
        let hosts = std::mem::take(&mut self.hosts);
        let mut lines = vec![format!("{play} ({seconds:.1} s)")];
        for (host, c) in hosts {
            let failed = if c.failed > 0 {
                format!(", {} FAILED", c.failed)
            } else {
                String::new()
            };
            lines.push(format!(
                "  {host}: {} ok, {} changed, {} skipped{failed}",
                c.ok + c.changed,
                c.changed,
                c.skipped
            ));
        }
        lines
    }
}
