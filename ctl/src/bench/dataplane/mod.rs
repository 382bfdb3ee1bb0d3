//! `ctl bench dataplane`: the paper's dataplane figures (section 4) for
//! dclab and for plain OvS bridges on the same simulated hosts, side by
//! side. Both clusters are up at once but measured one at a time, figure
//! by figure; both are removed at the end, also on error.

mod arp;
mod connrate;
mod iperf;
mod measure;
mod ping;
mod report;
mod rounds;
mod setup;
mod stats;
#[cfg(test)]
mod tests;

use std::time::Instant;

use serde_json::json;

use crate::local::UpOptions;
use crate::output::{self, Format};
use measure::{Figures, Settings};

#[derive(clap::Args, Debug)]
pub struct DataplaneArgs {
    /// Shorter measurements: a smoke run of every figure, not a benchmark.
    #[arg(long)]
    pub quick: bool,
    /// Rounds of every figure (alternating which setup goes first); each
    /// figure printed is the median of the rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

const DCLAB_CLUSTER: &str = "bdclab";
const PLAIN_CLUSTER: &str = "bplain";
const HOSTS: usize = 3;

pub fn run(args: DataplaneArgs, format: Format) -> anyhow::Result<()> {
    let settings = if args.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let machine = super::machine_line();
    let started = Instant::now();
    // Both clusters up, then each figure measured on one and then the
    // other: the idle cluster costs little, and background load on this
    // machine then weighs on both figures alike.
    let dclab_cluster = setup::paper_cluster(&UpOptions::new(DCLAB_CLUSTER, HOSTS))?;
    let mut plain_opts = UpOptions::new(PLAIN_CLUSTER, HOSTS);
    plain_opts.plain = true;
    let plain_cluster = setup::paper_cluster(&plain_opts)?;
    let clusters = [("dclab", &*dclab_cluster), ("plain", &*plain_cluster)];
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let [dclab, plain]: [Figures; 2] = rounds::measure(&clusters, &settings, rounds)?
        .try_into()
        .expect("one set of figures per cluster");
    eprintln!("removing clusters {DCLAB_CLUSTER} and {PLAIN_CLUSTER}");
    drop((dclab_cluster, plain_cluster));
    let elapsed = started.elapsed().as_secs();
    let rows = report::rows(&dclab, &plain);
    let json = json!({
        "machine": machine,
        "quick": args.quick,
        "rounds": rounds,
        "settings": settings,
        "elapsed_seconds": elapsed,
        "paper": report::PAPER,
        "dclab": dclab,
        "plain": plain,
        "rows": rows,
    });
    if format == Format::Table {
        let mode = if args.quick { "quick smoke run" } else { "full run" };
        println!("ctl bench dataplane, {mode}, {elapsed} s: {machine} (userspace datapath)");
        println!("{}", report::PAPER);
        println!(
            "each figure is the median of {rounds} rounds; in a round, times are means of {} pings, {} ARP \
             resolutions and {} broadcast pings; TCP is the median of {} runs of {} s per round, taken in turns \
             with the other setup, and its ratio the median of the back-to-back pairs' ratios\n",
            settings.ping_count,
            settings.arp_rounds,
            settings.broadcast_count,
            settings.tcp_samples,
            settings.iperf_seconds
        );
    }
    output::print(format, &report::HEADERS, &report::cells(&rows), json);
    if format == Format::Table {
        print!("{}", report::notes(&[("dclab", &dclab), ("plain OvS", &plain)]));
    }
    Ok(())
}
