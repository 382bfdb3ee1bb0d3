//! One or two examples at the end of every command's help, kept in one
//! table by command path so a test can tell which command has none.

/// (command path, examples), the path as typed after `ctl`.
const EXAMPLES: &[(&str, &str)] = &[
    ("lab", "ctl lab up examples/micro-pair.toml\n  ctl lab status pair"),
    ("lab check", "ctl lab check examples/openstack-hpi-containers.toml"),
    ("lab plan", "ctl lab plan examples/openstack-hpi-containers.toml"),
    ("lab up", "ctl lab up examples/micro-pair.toml --snapshot initial"),
    ("lab status", "ctl lab status pair\n  ctl lab status pair -o json"),
    ("lab graph", "ctl lab graph pair --out pair.html\n  ctl lab graph pair --format dot | dot -Tpng -o pair.png"),
    ("lab down", "ctl lab down pair"),
    ("lab ls", "ctl lab ls"),
    ("lab exec", "ctl lab exec pair a -- ping -c 3 10.0.0.2"),
    ("lab proxy", "ssh -o ProxyCommand='ctl lab proxy mylab %h 22' root@node1"),
    ("lab forward", "ctl lab forward openstack-hpi controller 5000"),
    ("lab install", "ctl lab install openstack-hpi --snapshot initial"),
    ("lab ssh", "ctl lab ssh openstack-hpi controller -- hostname"),
    ("experiment", "ctl experiment run node-crash --lab pair\n  ctl experiment show RUN"),
    ("experiment check", "ctl experiment check my-experiment.toml"),
    ("experiment run", "ctl experiment run node-crash --lab pair --dry-run\n  ctl experiment run compute-unreachable --lab openstack-hpi"),
    ("experiment abort", "ctl experiment abort RUN"),
    ("experiment ls", "ctl experiment ls --lab pair\n  ctl experiment ls --builtin"),
    ("experiment show", "ctl experiment show last\n  ctl experiment show RUN -o json"),
    ("experiment report", "ctl experiment report last --format html --out run.html"),
    ("snapshot", "ctl snapshot create initial --lab pair\n  ctl snapshot restore initial --lab pair"),
    ("snapshot create", "ctl snapshot create initial --lab pair\n  ctl snapshot create mine --lab pair --cold"),
    ("snapshot restore", "ctl snapshot restore initial --lab pair"),
    ("snapshot ls", "ctl snapshot ls --lab pair"),
    ("snapshot rm", "ctl snapshot rm mine --lab pair"),
    ("image", "ctl image build debian --role controller"),
    ("image build-micro", "ctl image build-micro"),
    ("image build", "ctl image build debian --role compute\n  ctl image build debian --vm"),
    ("verify", "ctl verify isolation"),
    ("verify isolation", "ctl verify isolation\n  ctl verify isolation -o json"),
    ("trace", "ctl trace --from vm1 --to 10.0.0.2"),
    ("host", "ctl host ls"),
    ("host create", "ctl host create h9 --uplink eth1 --mac 0a:00:00:00:00:09"),
    ("host ls", "ctl host ls -o json"),
    ("host rm", "ctl host rm h9"),
    ("tenant", "ctl tenant create red\n  ctl tenant ls"),
    ("tenant create", "ctl tenant create red"),
    ("tenant ls", "ctl tenant ls"),
    ("tenant rm", "ctl tenant rm red"),
    ("network", "ctl network create net --tenant red --cidr 10.0.0.0/24"),
    ("network create", "ctl network create net --tenant red --cidr 10.0.0.0/24"),
    ("network ls", "ctl network ls --tenant red"),
    ("network rm", "ctl network rm net --tenant red"),
    ("port", "ctl port ls -o json"),
    ("port create", "ctl port create p1 --tenant red --network net --host h1 --mac 02:00:00:00:00:01 --ip 10.0.0.1"),
    ("port ls", "ctl port ls --tenant red"),
    ("port rm", "ctl port rm p1"),
    ("rules", "ctl rules show --host h1"),
    ("rules show", "ctl rules show --host h1"),
    ("local", "ctl local up --hosts 2\n  ctl local down"),
    ("local up", "ctl local up --hosts 3\n  ctl local up --hosts 2 --name os"),
    ("local down", "ctl local down\n  ctl local down --name os"),
    ("local status", "ctl local status -o json"),
    ("local instance", "ctl local instance add vm1 --host h1 --tenant red --network net --ip 10.0.0.1/24"),
    ("local instance add", "ctl local instance add vm1 --host h1 --tenant red --network net --ip 10.0.0.1/24"),
    ("local instance rm", "ctl local instance rm vm1"),
    ("local instance ls", "ctl local instance ls"),
    ("doctor", "ctl doctor\n  ctl doctor -o json"),
    ("demo", "ctl demo"),
    ("bench", "ctl bench control-plane --scales 1000:20000"),
    ("bench dataplane", "ctl bench dataplane"),
    ("bench control-plane", "ctl bench control-plane\n  ctl bench control-plane --scales 1000:20000"),
    ("bench agent-restart", "ctl bench agent-restart"),
    ("bench ovs-restart", "ctl bench ovs-restart --runs 10 --reference-runs 3"),
    ("bench lab", "ctl bench lab"),
    ("bench verify", "ctl bench verify"),
    ("bench experiment", "ctl bench experiment"),
    ("bench exec", "ctl bench exec --seconds 20"),
    ("bench neutron", "scripts/bench-neutron.sh\n  ctl bench neutron nb-dclab nb-linuxbridge --ports 50"),
    ("bench reap", "ctl bench reap"),
    ("certs", "ctl certs init --dir /etc/dclab/pki --coordinator-addr 10.0.10.1 --agent h1 --agent h2"),
    ("certs init", "ctl certs init --dir /etc/dclab/pki --coordinator-addr 10.0.10.1 --agent h1 --agent h2"),
    ("certs issue", "ctl certs issue agent h4 --dir /etc/dclab/pki"),
    ("certs ls", "ctl certs ls --dir /etc/dclab/pki"),
    ("completions", "source <(ctl completions bash)"),
];

/// Every example line that is a ctl command, as words.
pub fn ctl_lines() -> impl Iterator<Item = Vec<String>> {
    EXAMPLES
        .iter()
        .flat_map(|(_, e)| e.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("ctl "))
        .map(shell_words)
}

/// The `ctl` command lines in the code blocks of a markdown text, with their
/// line numbers, as words (quotes honoured, a trailing `# comment` and
/// anything after `&&`, `|`, `;` or `>` dropped).
pub fn ctl_lines_in_markdown(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut shell = None;
    let mut lines = Vec::new();
    let mut pending = String::new();
    for (number, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            // Only shell blocks hold commands; plain blocks hold output and synopses.
            shell = match shell {
                None => Some(matches!(info, "sh" | "bash" | "shell")),
                Some(_) => None,
            };
            continue;
        }
        if shell != Some(true) {
            continue;
        }
        pending.push_str(trimmed.trim_end_matches('\\'));
        pending.push(' ');
        if trimmed.ends_with('\\') {
            continue;
        }
        let whole = std::mem::take(&mut pending);
        let whole = whole.trim();
        let whole = whole.strip_prefix("sudo ").unwrap_or(whole);
        let is_ctl = ["ctl ", "target/debug/ctl ", "target/release/ctl "]
            .iter()
            .any(|p| whole.starts_with(p));
        if is_ctl {
            let mut words = shell_words(whole);
            words[0] = "ctl".into();
            lines.push((number + 1, words));
        }
    }
    lines
}

/// Splits a shell line into words up to a comment or an operator.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '#' | '|' | ';' | '>' | '&') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The examples of the command at `path` ("lab up").
pub fn of(path: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// `command` with "Examples:" ending the help of it and every subcommand
/// the table has.
pub fn add(command: clap::Command) -> clap::Command {
    add_under(command, "")
}

fn add_under(mut command: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(&name, |sub| {
            let sub = match of(&sub_path) {
                Some(examples) => sub.after_help(format!("Examples:\n  {examples}")),
                None => sub,
            };
            add_under(sub, &sub_path)
        });
    }
    command
}

/// Every command path under `command`, as typed after `ctl`.
fn paths(command: &clap::Command, under: &str, out: &mut Vec<String>) {
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = if under.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{under} {}", sub.get_name())
        };
        out.push(path.clone());
        paths(sub, &path, out);
    }
}

/// What the table lacks for `command`, and what it has for commands that
/// do not exist: both empty when they agree.
pub fn gaps(command: &clap::Command) -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    paths(command, "", &mut all);
    let missing = all.iter().filter(|p| of(p).is_none()).cloned().collect();
    let stale = EXAMPLES
        .iter()
        .map(|(p, _)| p.to_string())
        .filter(|p| !all.contains(p))
        .collect();
    (missing, stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_ctl_commands() {
        for (path, examples) in EXAMPLES {
            assert!(
                examples.contains("ctl ") || examples.starts_with("scripts/"),
                "{path}: {examples}"
            );
        }
    }
}
