//! `ctl certs`: the deployment's CA and the certificates of the
//! coordinator, the agents and the operators.

pub mod issue;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use dclab_runtime::identity::{identity_of, Role};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::output::{print, Format};
use issue::{create_ca, ensure_dir, issue, pair_exists, Leaf};

pub const DEFAULT_DIR: &str = "/etc/dclab/pki";

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create the CA (unless DIR has one) and the certificates of the
    /// coordinator, the given agents and an operator. Never overwrites a file.
    Init {
        /// Where certificates go (owner-only files).
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Addresses clients use to reach the coordinator (IPs or DNS names).
        #[arg(
            long = "coordinator-addr",
            value_delimiter = ',',
            default_value = "127.0.0.1,localhost"
        )]
        coordinator_addrs: Vec<String>,
        /// Host ids of agents to issue certificates for.
        #[arg(long = "agent", value_delimiter = ',')]
        agents: Vec<String>,
        /// Name in the operator certificate written as operator.crt.
        #[arg(long, default_value = "admin")]
        operator: String,
        /// Validity of issued (non-CA) certificates.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Issue one more certificate from the existing CA.
    Issue {
        #[arg(value_enum)]
        role: IssueRole,
        /// Host id (agent) or user name (operator).
        name: String,
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// List the certificates in DIR with their identities and expiry.
    Ls {
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum IssueRole {
    Agent,
    Operator,
}

/// Names end up in file names and certificate subjects: keep them plain.
fn check_name(name: &str) -> anyhow::Result<()> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) || name.starts_with('.') {
        anyhow::bail!(
            "name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        );
    }
    Ok(())
}

/// The file stem of an agent's certificate.
pub fn agent_stem(host: &str) -> String {
    format!("agent-{host}")
}

pub fn run(cmd: CertsCommand, format: Format) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Init {
            dir,
            coordinator_addrs,
            agents,
            operator,
            days,
        } => {
            for line in init(&dir, &coordinator_addrs, &agents, &operator, days)? {
                eprintln!("{line}");
            }
            Ok(())
        }
        CertsCommand::Issue {
            role,
            name,
            dir,
            days,
        } => {
            check_name(&name)?;
            let (role, stem) = match role {
                IssueRole::Agent => (Role::Agent, agent_stem(&name)),
                IssueRole::Operator => (Role::Operator, format!("operator-{name}")),
            };
            if pair_exists(&dir, &stem)? {
                anyhow::bail!(
                    "{} already exists; not overwriting it",
                    issue::cert_path(&dir, &stem).display()
                );
            }
            issue(&dir, &stem, &Leaf::new(role, &name, &[], days))?;
            eprintln!("issued {}", issue::cert_path(&dir, &stem).display());
            Ok(())
        }
        CertsCommand::Ls { dir } => list(&dir, format),
    }
}

/// Creates what is missing; returns what it did, a line each.
pub fn init(
    dir: &Path,
    addrs: &[String],
    agents: &[String],
    operator: &str,
    days: i64,
) -> anyhow::Result<Vec<String>> {
    for host in agents {
        check_name(host)?;
    }
    check_name(operator)?;
    ensure_dir(dir)?;
    let mut report = Vec::new();
    if pair_exists(dir, "ca")? {
        report.push(format!("using the existing CA in {}", dir.display()));
    } else {
        create_ca(dir)?;
        report.push(format!("created a new CA in {}", dir.display()));
    }
    let mut wanted = vec![(
        "coordinator".to_string(),
        Role::Coordinator,
        "coordinator".to_string(),
        addrs.to_vec(),
    )];
    wanted.push(("operator".into(), Role::Operator, operator.to_string(), vec![]));
    for host in agents {
        wanted.push((agent_stem(host), Role::Agent, host.clone(), vec![]));
    }
    for (stem, role, name, sans) in wanted {
        if pair_exists(dir, &stem)? {
            report.push(format!("kept existing {stem}.crt"));
            continue;
        }
        issue(dir, &stem, &Leaf::new(role, &name, &sans, days)).with_context(|| format!("issuing {stem}"))?;
        report.push(format!("issued {stem}.crt ({role:?} {name})"));
    }
    Ok(report)
}

fn list(dir: &Path, format: Format) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    entries.sort();
    for path in entries {
        let der = CertificateDer::from_pem_file(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (_, cert) =
            X509Certificate::from_der(&der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let who = identity_of(&der)
            .map(|id| id.to_string())
            .unwrap_or_else(|_| "certificate authority".into());
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        rows.push(vec![file, who, cert.validity().not_after.to_string()]);
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| json!({"file": r[0], "identity": r[1], "expires": r[2]}))
        .collect();
    print(format, &["FILE", "IDENTITY", "EXPIRES"], &rows, json!(json));
    Ok(())
}
