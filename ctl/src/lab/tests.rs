use super::check::check;
use super::file::{parse, parse_mib};
use super::*;

fn lab(text: &str) -> Result<dclab_proto::v1::LabSpec, LabFileError> {
    check("lab.toml", text, parse("lab.toml", text)?)
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

#[test]
fn the_papers_architecture_example_is_valid() {
    let lab = load(&format!("{EXAMPLES}/openstack-hpi.toml")).unwrap();
    assert_eq!(lab.name, "openstack");
    let names: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "aptcache",
            "controller",
            "network",
            "compute1",
            "compute2",
            "object1",
            "object2"
        ]
    );
    let storage: Vec<_> = lab.nodes.iter().filter(|n| n.role == "object-storage").collect();
    assert!(storage.iter().all(|n| n.disks_mib == [10240, 10240]));
    let nets: Vec<&str> = lab.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nets, ["management", "tunnel", "external"], "in file order");
    assert_eq!(lab.nodes[2].interfaces.len(), 3);
    load(&format!("{EXAMPLES}/micro-pair.toml")).unwrap();
}

fn error(text: &str) -> String {
    lab(text).unwrap_err().to_string()
}

const HEAD: &str =
    "[lab]\nname = \"l\"\nimage = \"micro\"\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n";

#[test]
fn errors_name_the_line_and_the_field() {
    let e = error(&format!("{HEAD}[[node]]\nname = \"a\"\nmemory = \"lots\"\n"));
    assert_eq!(
        e,
        "lab.toml:9: node a: memory \"lots\" is not a size like \"512MiB\" or \"4GiB\" (at least 64 MiB)"
    );
    let e = error(&format!(
        "{HEAD}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\ninterfaces = [{{ network = \"wan\" }}]\n"
    ));
    assert_eq!(
        e,
        "lab.toml:10: node a: network \"wan\" is not defined (networks: lan)"
    );
    let e = error(&format!("{HEAD}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\ninterfaces = [{{ network = \"lan\", ip = \"10.0.1.9\" }}]\n"));
    assert!(
        e.starts_with("lab.toml:10: node a: ip 10.0.1.9 is not a host address of network lan"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\nvcpu = 2\n"
    ));
    assert!(e.starts_with("lab.toml:10: unknown field `vcpu`"), "{e}");
    let e = error(&format!(
        "{HEAD}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\n[[node]]\nname = \"a\"\nmemory = \"1GiB\"\n"
    ));
    assert_eq!(e, "lab.toml:11: node a is defined twice");
    let e = error(&format!(
        "{HEAD}[[network]]\nname = \"b\"\ncidr = \"10.0.0.128/25\"\n"
    ));
    assert_eq!(
        e,
        "lab.toml:9: network b: cidr 10.0.0.128/25 overlaps network lan"
    );
    let e = error("[lab]\nname = \"l\"\n[[node]]\nname = \"a\"\nmemory = \"1GiB\"\n");
    assert_eq!(
        e,
        "lab.toml:4: node a: no image; set image on the node or in [lab]"
    );
    let e = error("[lab]\nname = \"l\"\nbroken = \n");
    assert!(e.starts_with("lab.toml:3:"), "{e}");
    let e = error(&format!("{HEAD}[[node]]\nname = \"a b\"\nmemory = \"1GiB\"\n"));
    assert!(e.starts_with("lab.toml:8: node name \"a b\""), "{e}");
}

#[test]
fn two_nodes_cannot_share_an_address() {
    let text = format!(
        "{HEAD}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\ninterfaces = [{{ network = \"lan\", ip = \"10.0.0.7\" }}]\n\
         [[node]]\nname = \"b\"\nmemory = \"1GiB\"\ninterfaces = [{{ network = \"lan\", ip = \"10.0.0.7\" }}]\n"
    );
    assert_eq!(
        error(&text),
        "lab.toml:14: node b: ip 10.0.0.7 is used twice in network lan"
    );
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_mib("512MiB"), Some(512));
    assert_eq!(parse_mib("4GiB"), Some(4096));
    assert_eq!(parse_mib("300"), Some(300));
    assert_eq!(parse_mib("0"), None);
    assert_eq!(parse_mib("4GB"), None);
    assert_eq!(parse_mib("18446744073709551615GiB"), None, "too big, not a crash");
}

#[test]
fn ssh_keys_and_lab_name_length_are_checked_where_they_stand() {
    let keyed = "[lab]\nname = \"l\"\nimage = \"x\"\nssh_keys = [\"ssh-ed25519 AAAA me@host\"]\n";
    assert_eq!(lab(keyed).unwrap().ssh_keys, ["ssh-ed25519 AAAA me@host"]);
    let bad = "[lab]\nname = \"l\"\nimage = \"x\"\nssh_keys = [\n  \"not a key\",\n]\n";
    assert!(error(bad).starts_with("lab.toml:5: ssh_keys:"), "{}", error(bad));
    let long = format!("[lab]\nname = \"{}\"\n", "x".repeat(25));
    assert!(error(&long).contains("the limit is 24"), "{}", error(&long));
}

#[test]
fn network_kinds_parse_and_a_split_switch_network_names_the_pin() {
    let switch = format!("{HEAD}[[network]]\nname = \"tunnel\"\ncidr = \"10.9.0.0/24\"\nkind = \"switch\"\n");
    let spec = lab(&switch).unwrap();
    let kinds: Vec<i32> = spec.networks.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            dclab_proto::v1::NetworkKind::Rewrite as i32,
            dclab_proto::v1::NetworkKind::Switch as i32
        ]
    );
    let hub = switch.replace("\"switch\"", "\"hub\"");
    assert_eq!(
        error(&hub),
        "lab.toml:10: network tunnel: kind \"hub\" is not \"rewrite\" or \"switch\""
    );
    let split = format!(
        "{switch}[[node]]\nname = \"a\"\nmemory = \"1GiB\"\nhost = \"h1\"\ninterfaces = [{{ network = \"tunnel\" }}]\n\
         [[node]]\nname = \"b\"\nmemory = \"1GiB\"\nhost = \"h2\"\ninterfaces = [{{ network = \"tunnel\" }}]\n"
    );
    assert_eq!(
        error(&split),
        "lab.toml:19: nodes a (host h1) and b (host h2) are on switch network tunnel, which lives on one host; pin them to the same host"
    );
}
