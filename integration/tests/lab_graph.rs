//! `ctl lab graph` on a real lab of container nodes across two simulated
//! hosts: the page, laid out by headless Chromium, shows every node inside
//! the window with no two overlapping; the dot form is valid Graphviz; a lab
//! that does not exist is named in the error.

use std::process::Command;

use dclab_integration::browser;
use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::Labs;
use dclab_integration::libvirtd::{vm_dir, Libvirtd};

fn lab_text(name: &str) -> String {
    let mut text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n\
         [[network]]\nname = \"mgmt\"\ncidr = \"10.0.0.0/24\"\n\n\
         [[network]]\nname = \"data\"\ncidr = \"10.1.0.0/24\"\n"
    );
    for (node, role, host, ip, data) in [
        ("controller", "controller", "h1", "10.0.0.11", true),
        ("network", "network", "h1", "10.0.0.21", true),
        ("compute1", "compute", "h2", "10.0.0.31", false),
    ] {
        let data = if data {
            format!(
                ", {{ network = \"data\", ip = \"{}\" }}",
                ip.replace("10.0.", "10.1.")
            )
        } else {
            String::new()
        };
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nrole = \"{role}\"\nkind = \"container\"\nmemory = \"128MiB\"\nhost = \"{host}\"\n\
             interfaces = [{{ network = \"mgmt\", ip = \"{ip}\" }}{data}]\n"
        ));
    }
    text
}

#[test]
fn the_lab_picture_shows_every_node_and_dot_renders() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("gr", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-graphtest");
    let lab = format!("graph{}", std::process::id());
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, lab_text(&lab)).unwrap();
    let _labs = Labs(&ctl, vec![lab.clone()]);
    let up = ctl.json(&["lab", "up", file.to_str().unwrap()]);
    assert_eq!(up["ready"], true, "{up}");

    let page = dir.path().join("lab.html");
    let made = ctl.run(&["lab", "graph", &lab, "--out", page.to_str().unwrap()]);
    assert!(made.ok(), "{}", made.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    for text in [
        "host h1",
        "host h2",
        "controller",
        "compute1",
        "10.0.0.31",
        "10.1.0.21",
        "network mgmt 10.0.0.0/24",
    ] {
        assert!(html.contains(text), "{text} missing from the page");
    }
    let boxes = browser::boxes_inside_window(&html, dir.path(), "g.node", 1280, 800);
    assert_eq!(
        boxes,
        ["controller: ok", "network: ok", "compute1: ok"],
        "as chromium laid it out"
    );
    let png = dir.path().join("lab.png");
    browser::screenshot(&page, &png, 1280, 800);
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "a screenshot with something on it"
    );
    if let Ok(keep) = std::env::var("DCLAB_KEEP_SCREENSHOTS") {
        std::fs::copy(&png, std::path::Path::new(&keep).join("lab-graph.png")).unwrap();
    }

    let dot = ctl.run(&["lab", "graph", &lab, "--format", "dot"]);
    assert!(dot.ok(), "{}", dot.stderr);
    let rendered = Command::new("dot")
        .arg("-Tsvg")
        .stdin(
            std::fs::File::open({
                let path = dir.path().join("lab.dot");
                std::fs::write(&path, &dot.stdout).unwrap();
                path
            })
            .unwrap(),
        )
        .output()
        .expect("graphviz's dot is needed: apt-get install graphviz (scripts/install-deps.sh installs it)");
    assert!(
        rendered.status.success(),
        "dot refused: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("compute1"));

    let missing = ctl.run(&["lab", "graph", "no-such-lab"]);
    assert!(!missing.ok());
    assert!(missing.stderr.contains("no-such-lab"), "{}", missing.stderr);
}
