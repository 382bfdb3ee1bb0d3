//! Placeholder: written by the dataplane benchmark work.

#[derive(clap::Args, Debug)]
pub struct DataplaneArgs {}

pub fn run(_args: DataplaneArgs, _format: crate::output::Format) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
