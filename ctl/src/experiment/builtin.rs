//! The experiments dclab ships (examples/experiments/), addressed by name.

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        /// (name, file text), in the order listed.
        pub const BUILTINS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../examples/experiments/", $name, ".toml")))),*
        ];
    };
}

builtins!(
    "node-crash",
    "partition",
    "network-delay",
    "freeze",
    "controller-crash",
    "controller-crash-power-off",
    "token-loss",
    "compute-unreachable",
);

/// The file text of a built-in experiment.
pub fn find(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    /// A built-in that does not parse would fail only when someone runs it.
    #[test]
    fn every_builtin_parses_under_its_name() {
        for (name, text) in super::BUILTINS {
            let spec = dclab_spec::experiment::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.name, *name);
        }
    }
}
