//! Experiment files: TOML, checked with every error naming its line and
//! field, as lab files are. ctl (`experiment check`, `--dry-run`) and the
//! coordinator (`RunExperiment`) use this same parser.

use std::collections::BTreeSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::spec::*;
pub use crate::units::line_of;
use crate::units::{kbit, mib, millis};
use crate::validate::check_name;

/// A problem in an experiment file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    experiment: RawHeader,
    #[serde(default, rename = "target")]
    targets: Vec<RawTarget>,
    #[serde(default, rename = "probe")]
    probes: Vec<RawProbe>,
    #[serde(default, rename = "stage")]
    stages: Vec<RawStage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: S<String>,
    #[serde(default)]
    title: Option<S<String>>,
    #[serde(default)]
    description: Option<S<String>>,
    #[serde(default)]
    lab: Option<S<String>>,
    #[serde(default)]
    lease: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: S<String>,
    node: Option<S<String>>,
    role: Option<S<String>>,
    host: Option<S<String>>,
    pick: Option<S<String>>,
    #[serde(default)]
    not: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: S<String>,
    from: S<String>,
    to: S<String>,
    network: Option<S<String>>,
    kind: Option<S<String>>,
    port: Option<S<u16>>,
    interval: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: S<String>,
    #[serde(default, rename = "step")]
    steps: Vec<S<RawStep>>,
    #[serde(default, rename = "check")]
    checks: Vec<S<RawCheck>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStep {
    exec: Option<S<String>>,
    wait: Option<S<String>>,
    fault: Option<S<String>>,
    heal: Option<S<String>>,
    prompt: Option<S<String>>,
    on: Option<S<String>>,
    id: Option<S<String>>,
    timeout: Option<S<String>>,
    network: Option<S<String>>,
    delay: Option<S<String>>,
    jitter: Option<S<String>>,
    loss: Option<S<f64>>,
    duplicate: Option<S<f64>>,
    corrupt: Option<S<f64>>,
    reorder: Option<S<f64>>,
    rate: Option<S<String>>,
    groups: Option<S<Vec<Vec<String>>>>,
    process: Option<S<String>>,
    restart: Option<S<String>>,
    service: Option<S<String>>,
    size: Option<S<String>>,
    path: Option<S<String>>,
    workers: Option<S<u32>>,
    port: Option<S<u16>>,
    protocol: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: S<String>,
    command: Option<S<RawCommand>>,
    reach: Option<S<RawReach>>,
    expect: Option<S<String>>,
    samples: Option<S<u32>>,
    tolerance: Option<S<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    on: S<String>,
    run: S<String>,
    exit: Option<S<i32>>,
    output: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReach {
    from: S<String>,
    to: S<String>,
    network: Option<S<String>>,
    kind: Option<S<String>>,
    port: Option<S<u16>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: String) -> FileError {
        FileError {
            file: self.file.to_string(),
            line: line_of(self.text, &span),
            message,
        }
    }

    fn name(&self, what: &str, n: &S<String>) -> Result<String, FileError> {
        check_name(what, n.get_ref()).map_err(|m| self.err(n.span(), m))?;
        Ok(n.get_ref().clone())
    }

    fn duration(&self, what: &str, d: &S<String>, max_ms: u64) -> Result<u64, FileError> {
        millis(d.get_ref()).filter(|ms| *ms <= max_ms).ok_or_else(|| {
            self.err(
                d.span(),
                format!(
                    "{what} {:?} is not a duration like \"500ms\", \"5s\" or \"2m\" (at most {} s)",
                    d.get_ref(),
                    max_ms / 1000
                ),
            )
        })
    }

    fn target(&self, known: &BTreeSet<String>, t: &S<String>) -> Result<String, FileError> {
        if known.contains(t.get_ref()) {
            return Ok(t.get_ref().clone());
        }
        let list: Vec<&str> = known.iter().map(String::as_str).collect();
        let list = if list.is_empty() {
            "none are defined".into()
        } else {
            list.join(", ")
        };
        Err(self.err(
            t.span(),
            format!("target {:?} is not defined (targets: {list})", t.get_ref()),
        ))
    }

    fn reach(
        &self,
        kind: Option<&S<String>>,
        port: Option<&S<u16>>,
        at: Range<usize>,
    ) -> Result<Reach, FileError> {
        match (kind.map(|k| k.get_ref().as_str()), port) {
            (None | Some("ping"), None) => Ok(Reach::Ping),
            (None | Some("ping"), Some(p)) => Err(self.err(p.span(), "port is for kind = \"tcp\"".into())),
            (Some("tcp"), Some(p)) if *p.get_ref() > 0 => Ok(Reach::Tcp(*p.get_ref())),
            (Some("tcp"), _) => Err(self.err(at, "kind = \"tcp\" needs a port (1 to 65535)".into())),
            (Some(other), _) => Err(self.err(
                kind.expect("matched").span(),
                format!("kind {other:?} is not \"ping\" or \"tcp\""),
            )),
        }
    }
}

/// Reads and checks the experiment file at `path`.
pub fn load(path: &str) -> Result<Spec, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_string(),
        line: 0,
        message: format!("cannot read the experiment file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and checks an experiment file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Spec, FileError> {
    let c = Ctx { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| FileError {
        file: file.to_string(),
        line: e.span().map_or(1, |s| line_of(text, &s)),
        message: e.message().trim().to_string(),
    })?;
    let h = &raw.experiment;
    let name = c.name("experiment", &h.name)?;
    let lab = h.lab.as_ref().map(|l| c.name("lab", l)).transpose()?;
    let lease_ms = match &h.lease {
        Some(l) => c.duration("lease", l, 600_000)?,
        None => DEFAULT_LEASE_MS,
    };
    if lease_ms < 1000 {
        let span = h.lease.as_ref().expect("set").span();
        return Err(c.err(
            span,
            "lease must be at least 1s: agents renew every third of it".into(),
        ));
    }
    let targets = targets(&c, &raw.targets)?;
    let known: BTreeSet<String> = targets.iter().map(|t| t.name.clone()).collect();
    let probes = probes(&c, &known, &raw.probes)?;
    let mut fault_ids = BTreeSet::new();
    let mut stage_names = BTreeSet::new();
    let mut stages = Vec::new();
    for s in &raw.stages {
        let sname = c.name("stage", &s.name)?;
        if !stage_names.insert(sname.clone()) {
            return Err(c.err(s.name.span(), format!("stage {sname} is defined twice")));
        }
        let mut steps = Vec::new();
        for (i, st) in s.steps.iter().enumerate() {
            steps.push(step(&c, &known, &mut fault_ids, &sname, i, st)?);
        }
        let mut checks = Vec::new();
        for ch in &s.checks {
            checks.push(check(&c, &known, ch)?);
        }
        stages.push(Stage {
            name: sname,
            steps,
            checks,
        });
    }
    if stages.is_empty() {
        return Err(c.err(h.name.span(), format!("experiment {name} has no [[stage]]")));
    }
    Ok(Spec {
        name,
        title: h.title.as_ref().map(|t| t.get_ref().clone()).unwrap_or_default(),
        description: h
            .description
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default(),
        lab,
        lease_ms,
        targets,
        probes,
        stages,
    })
}

fn targets(c: &Ctx, raw: &[RawTarget]) -> Result<Vec<Target>, FileError> {
    let mut out: Vec<Target> = Vec::new();
    for t in raw {
        let name = c.name("target", &t.name)?;
        if out.iter().any(|o| o.name == name) {
            return Err(c.err(t.name.span(), format!("target {name} is defined twice")));
        }
        let filter = |f: &Option<S<String>>, what: &str| f.as_ref().map(|v| c.name(what, v)).transpose();
        let pick = match t.pick.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("one", _)) => Pick::One,
            Some(("all", _)) => Pick::All,
            Some((p, span)) => match p.strip_prefix("random:").and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if n > 0 => Pick::Random(n),
                _ => {
                    return Err(c.err(
                        span,
                        format!("pick {p:?} is not \"one\", \"all\" or \"random:N\""),
                    ))
                }
            },
        };
        let mut exclude = Vec::new();
        for n in &t.not {
            if !out.iter().any(|o| &o.name == n.get_ref()) {
                return Err(c.err(
                    n.span(),
                    format!("target {name}: not = {:?} names no earlier target", n.get_ref()),
                ));
            }
            exclude.push(n.get_ref().clone());
        }
        out.push(Target {
            name,
            node: filter(&t.node, "node")?,
            role: filter(&t.role, "role")?,
            host: filter(&t.host, "host")?,
            pick,
            exclude,
        });
    }
    Ok(out)
}

fn probes(c: &Ctx, known: &BTreeSet<String>, raw: &[RawProbe]) -> Result<Vec<Probe>, FileError> {
    let mut out: Vec<Probe> = Vec::new();
    for p in raw {
        let name = c.name("probe", &p.name)?;
        if out.iter().any(|o| o.name == name) {
            return Err(c.err(p.name.span(), format!("probe {name} is defined twice")));
        }
        let interval_ms = match &p.interval {
            Some(i) => c.duration("interval", i, 10_000)?,
            None => 100,
        };
        if interval_ms < 50 {
            let span = p.interval.as_ref().expect("set").span();
            return Err(c.err(span, "interval must be at least 50ms".into()));
        }
        out.push(Probe {
            name,
            from: c.target(known, &p.from)?,
            to: c.target(known, &p.to)?,
            network: p.network.as_ref().map(|n| c.name("network", n)).transpose()?,
            kind: c.reach(p.kind.as_ref(), p.port.as_ref(), p.name.span())?,
            interval_ms,
        });
    }
    Ok(out)
}

fn step(
    c: &Ctx,
    known: &BTreeSet<String>,
    fault_ids: &mut BTreeSet<String>,
    stage: &str,
    index: usize,
    raw: &S<RawStep>,
) -> Result<Step, FileError> {
    let s = raw.get_ref();
    let kinds = [
        s.exec.is_some(),
        s.wait.is_some(),
        s.fault.is_some(),
        s.heal.is_some(),
        s.prompt.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(c.err(
            raw.span(),
            format!(
                "stage {stage}, step {}: give exactly one of exec, wait, fault, heal or prompt",
                index + 1
            ),
        ));
    }
    let on = |what: &str| match &s.on {
        Some(t) => c.target(known, t),
        None => Err(c.err(
            raw.span(),
            format!("stage {stage}, step {}: {what} needs on = TARGET", index + 1),
        )),
    };
    if let Some(cmd) = &s.exec {
        if cmd.get_ref().trim().is_empty() || cmd.get_ref().contains('\n') || cmd.get_ref().len() > 4096 {
            return Err(c.err(
                cmd.span(),
                "exec must be one non-empty line of at most 4096 bytes".into(),
            ));
        }
        let timeout_ms = match &s.timeout {
            Some(t) => c.duration("timeout", t, 600_000)?,
            None => 30_000,
        };
        return Ok(Step::Exec {
            on: on("exec")?,
            command: cmd.get_ref().clone(),
            timeout_ms,
        });
    }
    if let Some(w) = &s.wait {
        return Ok(Step::Wait {
            ms: c.duration("wait", w, 3_600_000)?,
        });
    }
    if let Some(p) = &s.prompt {
        return Ok(Step::Prompt {
            message: p.get_ref().clone(),
        });
    }
    if let Some(h) = &s.heal {
        let id = match h.get_ref().as_str() {
            "all" => None,
            id if fault_ids.contains(id) => Some(id.to_string()),
            id => {
                return Err(c.err(
                    h.span(),
                    format!("heal {id:?}: no earlier fault has that id (or use \"all\")"),
                ))
            }
        };
        return Ok(Step::Heal { id });
    }
    let kind = s.fault.as_ref().expect("one kind is set");
    let id = match &s.id {
        Some(i) => c.name("fault id", i)?,
        None => format!("{stage}.{}", index + 1),
    };
    if id == "all" || !fault_ids.insert(id.clone()) {
        let span = s.id.as_ref().map_or(raw.span(), |i| i.span());
        return Err(c.err(span, format!("fault id {id:?} is used twice (or is \"all\")")));
    }
    let fault = fault(c, known, kind, s, raw.span())?;
    let on = match fault {
        Fault::Partition { .. } => None,
        _ => Some(on(&format!("fault {}", kind.get_ref()))?),
    };
    Ok(Step::Fault { id, on, fault })
}

fn fault(
    c: &Ctx,
    known: &BTreeSet<String>,
    kind: &S<String>,
    s: &RawStep,
    at: Range<usize>,
) -> Result<Fault, FileError> {
    let net = || s.network.as_ref().map(|n| c.name("network", n)).transpose();
    // Process and service names go into commands: plain names only.
    let word = |v: &Option<S<String>>, what: &str| -> Result<String, FileError> {
        let v = v.as_ref().ok_or_else(|| {
            c.err(
                at.clone(),
                format!("fault {} needs {what} = NAME", kind.get_ref()),
            )
        })?;
        c.name(what, v)
    };
    let size = |default: Option<u64>| match &s.size {
        Some(v) => mib(v.get_ref())
            .ok_or_else(|| c.err(v.span(), format!("size {:?} is not like \"64MiB\"", v.get_ref()))),
        None => default.ok_or_else(|| {
            c.err(
                at.clone(),
                format!("fault {} needs size = \"64MiB\"", kind.get_ref()),
            )
        }),
    };
    let pct = |v: &Option<S<f64>>, what: &str| -> Result<f64, FileError> {
        match v {
            None => Ok(0.0),
            Some(p) if (0.0..=100.0).contains(p.get_ref()) => Ok(*p.get_ref()),
            Some(p) => Err(c.err(
                p.span(),
                format!("{what} {} is not a percentage from 0 to 100", p.get_ref()),
            )),
        }
    };
    let ms = |v: &Option<S<String>>, what: &str| -> Result<f64, FileError> {
        v.as_ref()
            .map_or(Ok(0.0), |d| c.duration(what, d, 60_000).map(|ms| ms as f64))
    };
    Ok(match kind.get_ref().as_str() {
        "power-off" => Fault::PowerOff,
        "shutdown" => Fault::Shutdown,
        "reboot" => Fault::Reboot,
        "reset" => Fault::Reset,
        "freeze" => Fault::Freeze,
        "link-cut" => Fault::LinkCut { network: net()? },
        "netem" => {
            let rate_kbit = match &s.rate {
                Some(r) => kbit(r.get_ref())
                    .ok_or_else(|| c.err(r.span(), format!("rate {:?} is not like \"10mbit\" or \"500kbit\"", r.get_ref())))?,
                None => 0,
            };
            let netem = dclab_proto::v1::NetemFault {
                delay_ms: ms(&s.delay, "delay")?,
                jitter_ms: ms(&s.jitter, "jitter")?,
                loss_pct: pct(&s.loss, "loss")?,
                duplicate_pct: pct(&s.duplicate, "duplicate")?,
                corrupt_pct: pct(&s.corrupt, "corrupt")?,
                reorder_pct: pct(&s.reorder, "reorder")?,
                rate_kbit,
            };
            if netem == dclab_proto::v1::NetemFault::default() {
                return Err(c.err(at, "fault netem needs at least one of delay, loss, duplicate, corrupt, reorder or rate".into()));
            }
            if netem.reorder_pct > 0.0 && netem.delay_ms == 0.0 {
                return Err(c.err(at, "fault netem: reorder needs a delay (reordered packets skip it)".into()));
            }
            if netem.jitter_ms > netem.delay_ms {
                return Err(c.err(at, "fault netem: jitter cannot exceed delay".into()));
            }
            Fault::Netem { network: net()?, netem }
        }
        "port-block" => {
            let protocol = match &s.protocol {
                None => "tcp".to_string(),
                Some(p) if ["tcp", "udp"].contains(&p.get_ref().as_str()) => p.get_ref().clone(),
                Some(p) => return Err(c.err(p.span(), format!("protocol {:?} is not \"tcp\" or \"udp\"", p.get_ref()))),
            };
            let port = match &s.port {
                Some(p) if *p.get_ref() > 0 => u32::from(*p.get_ref()),
                Some(p) => return Err(c.err(p.span(), "port must be 1 to 65535".into())),
                None => return Err(c.err(at, "fault port-block needs port = 1 to 65535".into())),
            };
            Fault::PortBlock(dclab_proto::v1::PortBlockFault { protocol, port })
        }
        "partition" => {
            let Some(groups) = &s.groups else {
                return Err(c.err(at, "fault partition needs groups = [[TARGET, ...], [TARGET, ...]]".into()));
            };
            let g = groups.get_ref();
            if g.len() != 2 || g.iter().any(Vec::is_empty) {
                return Err(c.err(groups.span(), "groups must be two non-empty lists of targets".into()));
            }
            for t in g.iter().flatten() {
                c.target(known, &Spanned::new(groups.span(), t.clone()))?;
            }
            let network = s.network.as_ref().map(|n| c.name("network", n)).transpose()?;
            Fault::Partition {
                groups: (g[0].clone(), g[1].clone()),
                network,
            }
        }
        "kill" => Fault::Kill {
            process: word(&s.process, "process")?,
            restart: match &s.restart {
                Some(r) if r.get_ref().trim().is_empty() || r.get_ref().contains('\n') => {
                    return Err(c.err(r.span(), "restart must be one command line".into()))
                }
                r => r.as_ref().map(|r| r.get_ref().clone()),
            },
        },
        "stop" => Fault::Stop {
            process: word(&s.process, "process")?,
        },
        "restart" => Fault::Restart {
            service: word(&s.service, "service")?,
        },
        "disk-fill" => Fault::DiskFill {
            mib: size(None)?,
            path: match &s.path {
                None => "/tmp".into(),
                Some(p) if p.get_ref().starts_with('/') && p.get_ref().chars().all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch)) => {
                    p.get_ref().clone()
                }
                Some(p) => return Err(c.err(p.span(), format!("path {:?} must be an absolute path of letters, digits, '/', '.', '_' and '-'", p.get_ref()))),
            },
        },
        "cpu-stress" => Fault::CpuStress {
            workers: s.workers.as_ref().map_or(1, |w| *w.get_ref()).clamp(1, 64),
        },
        "memory-stress" => Fault::MemoryStress { mib: size(None)? },
        "flush-memcached" => Fault::FlushMemcached {
            port: s.port.as_ref().map_or(11211, |p| *p.get_ref()),
        },
        other => {
            return Err(c.err(
                kind.span(),
                format!(
                    "fault {other:?} is unknown; faults: power-off, shutdown, reboot, reset, freeze, link-cut, netem, \
                     partition, port-block, kill, stop, restart, disk-fill, cpu-stress, memory-stress, flush-memcached"
                ),
            ))
        }
    })
}

fn check(c: &Ctx, known: &BTreeSet<String>, raw: &S<RawCheck>) -> Result<Check, FileError> {
    let ch = raw.get_ref();
    let name = ch.name.get_ref().clone();
    if name.trim().is_empty() || name.len() > 200 || name.contains('\n') {
        return Err(c.err(
            ch.name.span(),
            "a check name is one line of 1 to 200 bytes".into(),
        ));
    }
    let what = match (&ch.command, &ch.reach) {
        (Some(cmd), None) => {
            let cmd = cmd.get_ref();
            if let Some(o) = &cmd.output {
                regex::Regex::new(o.get_ref()).map_err(|e| {
                    c.err(
                        o.span(),
                        format!("output {:?} is not a regular expression: {e}", o.get_ref()),
                    )
                })?;
            }
            if cmd.run.get_ref().trim().is_empty() || cmd.run.get_ref().contains('\n') {
                return Err(c.err(cmd.run.span(), "run must be one non-empty line".into()));
            }
            CheckWhat::Command {
                on: c.target(known, &cmd.on)?,
                run: cmd.run.get_ref().clone(),
                exit: cmd
                    .exit
                    .as_ref()
                    .map(|e| *e.get_ref())
                    .or(if cmd.output.is_none() { Some(0) } else { None }),
                output: cmd.output.as_ref().map(|o| o.get_ref().clone()),
            }
        }
        (None, Some(r)) => {
            let span = r.span();
            let r = r.get_ref();
            CheckWhat::Reach {
                from: c.target(known, &r.from)?,
                to: c.target(known, &r.to)?,
                network: r.network.as_ref().map(|n| c.name("network", n)).transpose()?,
                kind: c.reach(r.kind.as_ref(), r.port.as_ref(), span)?,
            }
        }
        _ => {
            return Err(c.err(
                raw.span(),
                format!("check {name:?}: give exactly one of command or reach"),
            ))
        }
    };
    let expect = match ch.expect.as_ref().map(|e| (e.get_ref().trim(), e.span())) {
        None | Some(("holds", _)) => Expect::Holds,
        Some(("fails", _)) => Expect::Fails,
        Some((e, span)) => {
            let parsed = e
                .strip_prefix("within ")
                .map(|d| (true, d))
                .or_else(|| e.strip_prefix("stays ").map(|d| (false, d)));
            match parsed
                .and_then(|(within, d)| millis(d).filter(|ms| *ms <= 3_600_000).map(|ms| (within, ms)))
            {
                Some((true, ms)) => Expect::Within(ms),
                Some((false, ms)) => Expect::Stays(ms),
                None => {
                    return Err(c.err(
                        span,
                        format!("expect {e:?} is not \"holds\", \"fails\", \"within 30s\" or \"stays 10s\""),
                    ))
                }
            }
        }
    };
    let samples = ch.samples.as_ref().map_or(3, |s| *s.get_ref());
    if !(1..=100).contains(&samples) {
        return Err(c.err(
            ch.samples.as_ref().expect("set").span(),
            "samples must be 1 to 100".into(),
        ));
    }
    let tolerance = ch.tolerance.as_ref().map_or(0, |t| *t.get_ref());
    if tolerance >= samples {
        let span = ch.tolerance.as_ref().map_or(raw.span(), |t| t.span());
        return Err(c.err(
            span,
            format!("tolerance {tolerance} must be below samples ({samples})"),
        ));
    }
    Ok(Check {
        name,
        what,
        expect,
        samples,
        tolerance,
    })
}
