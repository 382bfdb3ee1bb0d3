//! The experiment files the benchmark runs, on lab `bench`: node a on h1,
//! node b on h2.

const TARGETS: &str = "[[target]]\nname = \"a\"\nnode = \"a\"\n\n[[target]]\nname = \"b\"\nnode = \"b\"\n";

/// The faults timed from issue to effect, as step lines (without the id).
pub const TIMED: [(&str, &str); 5] = [
    ("freeze", "fault = \"freeze\"\non = \"a\""),
    ("partition", "fault = \"partition\"\ngroups = [[\"a\"], [\"b\"]]"),
    ("link-cut", "fault = \"link-cut\"\non = \"a\""),
    ("netem", "fault = \"netem\"\non = \"a\"\ndelay = \"10ms\""),
    ("stop", "fault = \"stop\"\non = \"a\"\nprocess = \"sleep\""),
];

/// `rounds` stages, each applying and healing every fault of [`TIMED`].
pub fn effect(rounds: usize) -> String {
    let mut text = format!(
        "[experiment]\nname = \"bench-effect\"\n\n{TARGETS}\n[[stage]]\nname = \"setup\"\n\
         [[stage.step]]\nexec = \"sleep 1000000 >/dev/null 2>&1 &\"\non = \"a\"\n"
    );
    for round in 0..rounds {
        text.push_str(&format!("\n[[stage]]\nname = \"round-{round}\"\n"));
        for (kind, lines) in TIMED {
            let id = format!("{kind}-{round}");
            text.push_str(&format!(
                "[[stage.step]]\n{lines}\nid = \"{id}\"\n[[stage.step]]\nheal = \"{id}\"\n"
            ));
        }
    }
    text
}

/// `fault` on a for `hold_s`, with b probing a every `interval_ms` and a
/// pinger at 10 ms beside it whose replies the wire capture stamps.
pub fn outage(fault: &str, hold_s: u32, interval_ms: u64) -> String {
    format!(
        "[experiment]\nname = \"bench-outage-{fault}\"\n\n{TARGETS}\n\
         [[probe]]\nname = \"b-to-a\"\nfrom = \"b\"\nto = \"a\"\ninterval = \"{interval_ms}ms\"\n\n\
         [[stage]]\nname = \"setup\"\n\
         [[stage.step]]\nexec = \"ping -i 0.01 -w 45 10.0.0.1 >/dev/null 2>&1 &\"\non = \"b\"\n\
         [[stage.check]]\nname = \"a answers\"\nreach = {{ from = \"b\", to = \"a\" }}\nexpect = \"within 10s\"\n\n\
         [[stage]]\nname = \"break\"\n\
         [[stage.step]]\nfault = \"{fault}\"\non = \"a\"\nid = \"out\"\n\
         [[stage.step]]\nwait = \"{hold_s}s\"\n\
         [[stage.step]]\nheal = \"out\"\n\
         [[stage.check]]\nname = \"a answers again\"\nreach = {{ from = \"b\", to = \"a\" }}\nexpect = \"within 60s\"\n\n\
         [[stage]]\nname = \"after\"\n[[stage.step]]\nwait = \"1s\"\n"
    )
}

/// A freeze of a held far longer than its lease, so that killing the
/// coordinator leaves the agent to heal it at expiry.
pub fn held(lease_s: u32) -> String {
    format!(
        "[experiment]\nname = \"bench-lease\"\nlease = \"{lease_s}s\"\n\n{TARGETS}\n\
         [[stage]]\nname = \"hold\"\n\
         [[stage.step]]\nfault = \"freeze\"\non = \"a\"\nid = \"held\"\n\
         [[stage.step]]\nwait = \"600s\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_benchmark_runs_parses() {
        for (name, text) in [
            ("effect", effect(3)),
            ("outage", outage("power-off", 3, 100)),
            ("freeze", outage("freeze", 3, 100)),
            ("held", held(3)),
        ] {
            let spec =
                dclab_spec::experiment::parse(name, &text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert!(!spec.stages.is_empty(), "{name}");
        }
        let spec = dclab_spec::experiment::parse("effect", &effect(2)).unwrap();
        assert_eq!(spec.stages.len(), 3);
        assert_eq!(spec.stages[1].steps.len(), 2 * TIMED.len());
    }
}
