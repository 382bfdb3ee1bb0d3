//! `ctl experiment`: dependability experiments on a lab (the HPI paper,
//! section 5): check a file, run it with live progress (Ctrl-C aborts and
//! heals), list, show and report runs.

mod builtin;
mod report;
mod run;

use std::path::PathBuf;

use crate::client::Operator;
use anyhow::Context;
use dclab_proto::v1;
use dclab_spec::experiment::{self, record::RunRecord};
use serde_json::json;

use crate::output::{print, Format};

type Client = Operator;

#[derive(Debug, clap::Subcommand)]
pub enum ExperimentCommand {
    /// Check an experiment file (or a built-in by name) without running anything.
    Check { experiment: String },
    /// Run an experiment (a file, or a built-in by name) on a lab. Exits 0 when every check went as
    /// expected, 1 when one deviated, 2 when the run failed or was aborted. Ctrl-C aborts: every
    /// fault is healed first.
    Run {
        experiment: String,
        /// The lab [default: the one the file names].
        #[arg(long)]
        lab: Option<String>,
        /// Resolve the targets and print the plan; run and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Continue prompt steps at once instead of waiting for Enter.
        #[arg(long, short)]
        yes: bool,
        /// Seed of random target picks (a run prints its own).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Abort a run under way: its faults are healed.
    Abort { run: String },
    /// Runs (with --builtin: the experiments dclab ships).
    Ls {
        #[arg(long)]
        builtin: bool,
        /// Only runs on this lab.
        #[arg(long)]
        lab: Option<String>,
    },
    /// One run: targets, timeline, checks, probes, findings.
    Show {
        /// A run id, or `last` for the newest run.
        run: String,
    },
    /// A run as JSON, JUnit XML or one self-contained HTML page.
    Report {
        /// A run id, or `last` for the newest run.
        run: String,
        #[arg(long, value_enum, default_value = "html")]
        format: report::ReportFormat,
        /// Write to this file [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// (name for errors, text) of a built-in name or a file path.
fn source(what: &str) -> anyhow::Result<(String, String)> {
    if let Some(text) = builtin::find(what) {
        return Ok((format!("{what} (built-in)"), text.to_string()));
    }
    let text = std::fs::read_to_string(what).with_context(|| {
        let names: Vec<&str> = builtin::BUILTINS.iter().map(|(n, _)| *n).collect();
        format!(
            "{what:?} is neither a built-in experiment ({}) nor a readable file",
            names.join(", ")
        )
    })?;
    Ok((what.to_string(), text))
}

pub async fn run(
    client: impl std::future::Future<Output = anyhow::Result<Client>>,
    cmd: ExperimentCommand,
    format: Format,
) -> anyhow::Result<()> {
    match cmd {
        ExperimentCommand::Check { experiment } => check(&experiment, format),
        ExperimentCommand::Ls { builtin: true, .. } => {
            list_builtins(format);
            Ok(())
        }
        ExperimentCommand::Run {
            experiment,
            lab,
            dry_run,
            yes,
            seed,
        } => {
            let (name, text) = source(&experiment)?;
            experiment::parse(&name, &text)?;
            let req = v1::RunExperimentRequest {
                file_name: name,
                file_text: text,
                lab: lab.unwrap_or_default(),
                dry_run,
                seed: seed.unwrap_or(0),
                yes,
            };
            let code = run::follow(client.await?, req, format).await?;
            crate::exit_with(code)
        }
        ExperimentCommand::Abort { run } => {
            client
                .await?
                .abort_run(v1::RunRef { id: run.clone() })
                .await
                .map_err(crate::status_error)?;
            eprintln!("run {run}: abort requested; its faults are being healed");
            Ok(())
        }
        ExperimentCommand::Ls { lab, .. } => {
            let runs = client
                .await?
                .list_runs(v1::ListRunsRequest {
                    lab: lab.unwrap_or_default(),
                })
                .await
                .map_err(crate::status_error)?
                .into_inner()
                .runs;
            list_runs(&runs, format);
            Ok(())
        }
        ExperimentCommand::Show { run } => {
            let record = fetch(&mut client.await?, &run).await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", report::text(&record));
            }
            Ok(())
        }
        ExperimentCommand::Report { run, format: f, out } => {
            let mut client = client.await?;
            let record = fetch(&mut client, &run).await?;
            // The lab's picture heads an HTML report while the lab exists.
            let lab = match f {
                report::ReportFormat::Html => client
                    .get_lab(v1::GetLabRequest {
                        name: record.lab.clone(),
                    })
                    .await
                    .ok()
                    .map(|l| l.into_inner()),
                _ => None,
            };
            let body = report::render(&record, f, lab.as_ref());
            match out {
                Some(path) => {
                    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?
                }
                None => print!("{body}"),
            }
            Ok(())
        }
    }
}

/// The run `id` names; `last` is the newest run that started.
async fn fetch(client: &mut Client, id: &str) -> anyhow::Result<RunRecord> {
    let id = if id == "last" {
        let runs = client
            .list_runs(v1::ListRunsRequest { lab: String::new() })
            .await
            .map_err(crate::status_error)?
            .into_inner()
            .runs;
        match runs.iter().max_by_key(|r| r.started_unix_ms) {
            Some(run) => run.id.clone(),
            None => anyhow::bail!("there is no run yet: `ctl experiment run EXPERIMENT --lab LAB` makes one"),
        }
    } else {
        id.to_string()
    };
    let run = client
        .get_run(v1::RunRef { id })
        .await
        .map_err(crate::status_error)?
        .into_inner();
    serde_json::from_str(&run.record_json).context("the coordinator sent a run record this ctl cannot read")
}

fn check(what: &str, format: Format) -> anyhow::Result<()> {
    let (name, text) = source(what)?;
    let spec = experiment::parse(&name, &text)?;
    let faults: usize = spec
        .stages
        .iter()
        .flat_map(|s| &s.steps)
        .filter(|s| matches!(s, experiment::Step::Fault { .. }))
        .count();
    let checks: usize = spec.stages.iter().map(|s| s.checks.len()).sum();
    let rows = vec![vec![
        spec.name.clone(),
        spec.lab.clone().unwrap_or_else(|| "-".into()),
        spec.targets.len().to_string(),
        spec.stages.len().to_string(),
        faults.to_string(),
        checks.to_string(),
        spec.probes.len().to_string(),
    ]];
    let doc = serde_json::to_value(&spec)?;
    print(
        format,
        &[
            "EXPERIMENT",
            "LAB",
            "TARGETS",
            "STAGES",
            "FAULTS",
            "CHECKS",
            "PROBES",
        ],
        &rows,
        doc,
    );
    Ok(())
}

fn list_builtins(format: Format) {
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for (name, text) in builtin::BUILTINS {
        let spec = experiment::parse(name, text).expect("built-ins parse (tested)");
        rows.push(vec![
            name.to_string(),
            spec.lab.clone().unwrap_or_else(|| "any".into()),
            spec.title.clone(),
        ]);
        docs.push(
            json!({"name": name, "lab": spec.lab, "title": spec.title, "description": spec.description}),
        );
    }
    print(format, &["NAME", "LAB", "TITLE"], &rows, json!(docs));
}

fn list_runs(runs: &[v1::Run], format: Format) {
    let when = |ms: u64| crate::experiment::report::clock(ms);
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let took = if r.ended_unix_ms > 0 {
                format!("{:.1} s", (r.ended_unix_ms - r.started_unix_ms) as f64 / 1000.0)
            } else {
                "-".into()
            };
            vec![
                r.id.clone(),
                r.experiment.clone(),
                r.lab.clone(),
                r.verdict.clone(),
                when(r.started_unix_ms),
                took,
            ]
        })
        .collect();
    let docs: Vec<_> = runs
        .iter()
        .map(|r| {
            json!({"id": r.id, "experiment": r.experiment, "lab": r.lab, "verdict": r.verdict,
                        "started_unix_ms": r.started_unix_ms, "ended_unix_ms": r.ended_unix_ms})
        })
        .collect();
    print(
        format,
        &["RUN", "EXPERIMENT", "LAB", "VERDICT", "STARTED", "TOOK"],
        &rows,
        json!(docs),
    );
}
