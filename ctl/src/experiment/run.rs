//! Following a run: its progress lines as they come, a prompt answered
//! with Enter, and Ctrl-C turned into an abort (the coordinator heals
//! every fault and ends the run as aborted).

use std::io::IsTerminal;

use dclab_proto::v1;
use dclab_spec::experiment::record::RunRecord;

use super::Client;
use crate::output::Format;

/// Runs `req` to its end; returns the exit code its verdict gives.
pub async fn follow(
    mut client: Client,
    req: v1::RunExperimentRequest,
    format: Format,
) -> anyhow::Result<i32> {
    let dry = req.dry_run;
    let mut stream = client
        .run_experiment(req)
        .await
        .map_err(crate::status_error)?
        .into_inner();
    let mut run_id = String::new();
    let mut aborting = false;
    loop {
        let next = tokio::select! {
            m = stream.message() => match m {
                Ok(m) => m,
                Err(status) if !run_id.is_empty() => {
                    eprintln!(
                        "lost the coordinator during run {run_id} ({}); its agents heal the run's faults when their leases lapse",
                        crate::status_error(status)
                    );
                    return Ok(2);
                }
                Err(status) => return Err(crate::status_error(status)),
            },
            _ = tokio::signal::ctrl_c(), if !aborting && !run_id.is_empty() => {
                aborting = true;
                eprintln!("aborting run {run_id}: healing its faults ...");
                client.abort_run(v1::RunRef { id: run_id.clone() }).await.map_err(crate::status_error)?;
                continue;
            }
        };
        let Some(event) = next else {
            anyhow::bail!("the coordinator ended the run's stream before the run ended");
        };
        if run_id.is_empty() && !event.run_id.is_empty() {
            run_id = event.run_id.clone();
        }
        if event.done {
            let record: RunRecord = serde_json::from_str(&event.record_json)?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else if !dry {
                eprintln!("{}", event.line);
                print!("{}", super::report::summary(&record));
                println!("`ctl experiment report {}` writes the HTML report", record.id);
            }
            return Ok(if dry { 0 } else { event.exit_code });
        }
        if !event.line.is_empty() {
            if dry && format == Format::Table {
                println!("{}", event.line);
            } else {
                eprintln!("{}", event.line);
            }
        }
        if !event.prompt.is_empty() {
            answer_prompt(&mut client, &run_id).await?;
        }
    }
}

/// Waits for Enter on a terminal; without one there is nobody to ask.
async fn answer_prompt(client: &mut Client, run: &str) -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        eprint!("  press Enter to continue (Ctrl-C aborts) ");
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await?;
    } else {
        eprintln!("  (no terminal to answer on: continuing)");
    }
    client
        .continue_run(v1::RunRef { id: run.to_string() })
        .await
        .map_err(crate::status_error)?;
    Ok(())
}
