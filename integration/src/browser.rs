//! Headless Chromium (Debian's `chromium`) for what a person looks at:
//! screenshots of pages, and the page's own measurements of what it drew.

use std::path::Path;
use std::process::Command;

/// Chromium with the flags this closed machine needs (no background
/// networking, a fresh profile), run as root without its sandbox.
fn chromium(profile: &Path) -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn require_chromium() {
    let found = Command::new("chromium").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "chromium is needed for this test: apt-get install chromium (scripts/install-deps.sh installs it)"
    );
}

/// A PNG of `page` as a `width` x `height` window shows it.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    require_chromium();
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "chromium made no screenshot of {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The DOM of `page` after its scripts ran, in a `width` x `height` window.
pub fn dom_after_scripts(page: &Path, width: u32, height: u32) -> String {
    require_chromium();
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .args(["--dump-dom", "--virtual-time-budget=3000"])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// For each element matching `selector`, whether its box lies wholly inside
/// a `width` x `height` window and overlaps no other match, as chromium
/// laid the page out: "name: ok" or "name: outside ..." lines, one per
/// element (`name` from its `data-node` attribute).
pub fn boxes_inside_window(
    page_html: &str,
    dir: &Path,
    selector: &str,
    width: u32,
    height: u32,
) -> Vec<String> {
    let probe = format!(
        "<script>window.addEventListener('load', () => {{\
         const all = [...document.querySelectorAll('{selector}')].map(e => [e.dataset.node, e.getBoundingClientRect()]);\
         const lines = all.map(([n, r], i) => {{\
           if (r.width < 1 || r.height < 1) return n + ': empty';\
           if (r.left < 0 || r.top < 0 || r.right > {width} || r.bottom > {height}) return n + ': outside ' + JSON.stringify(r);\
           const hit = all.find(([m, q], j) => j != i && q.left < r.right && r.left < q.right && q.top < r.bottom && r.top < q.bottom);\
           return hit ? n + ': overlaps ' + hit[0] : n + ': ok';\
         }});\
         const pre = document.createElement('pre'); pre.id = 'boxes'; pre.textContent = lines.join('\\n');\
         document.body.appendChild(pre); }});</script>"
    );
    let page = dir.join("probe.html");
    std::fs::write(&page, page_html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let dom = dom_after_scripts(&page, width, height);
    let start = dom.find("<pre id=\"boxes\">").expect("the probe script ran") + "<pre id=\"boxes\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    dom[start..end].lines().map(str::to_string).collect()
}
