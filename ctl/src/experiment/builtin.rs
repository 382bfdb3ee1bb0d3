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
