//! `ctl completions`: the scripts clap generates, exercised by the shells
//! that are here. Bash runs its completion function for real.

use std::process::Command;

fn completions(shell: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ctl"))
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// What bash offers after `words`, the last one being completed.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.bash");
    std::fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
         $(complete -p ctl | sed -E 's/.*-F ([^ ]+).*/\\1/') ctl '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash").args(["-c", &program]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_values() {
    let script = completions("bash");
    let top = bash_complete(&script, &["ctl", "la"]);
    assert_eq!(top, ["lab"]);
    let lab = bash_complete(&script, &["ctl", "lab", "in"]);
    assert_eq!(lab, ["install"]);
    let formats = bash_complete(&script, &["ctl", "lab", "status", "--output", ""]);
    assert_eq!(formats, ["table", "json"]);
    let shells = bash_complete(&script, &["ctl", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_name_the_commands() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef ctl"), "{}", &zsh[..80]);
    assert!(
        zsh.contains("'experiment:") && zsh.contains("'install:"),
        "zsh script lacks subcommands"
    );
    let fish = completions("fish");
    assert!(
        fish.contains("complete -c ctl") && fish.contains("-a \"experiment\""),
        "fish script lacks subcommands"
    );
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_ctl"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcsh") && err.contains("bash") && err.contains("fish"),
        "{err}"
    );
}
