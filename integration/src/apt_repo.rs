//! A Debian repository of one package served on loopback, standing in for
//! the archive behind the host's apt cache: tests publish a version, let a
//! node install it through the cache, publish another and see which one
//! the cache hands out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub const PACKAGE: &str = "dclab-marker";

pub struct AptRepo {
    dir: PathBuf,
    server: Child,
    pub port: u16,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl AptRepo {
    /// Serves `dir` (created) on a free loopback port with python's
    /// http.server; stopped (by pid) on drop.
    pub fn serve(dir: &Path) -> AptRepo {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the test repository did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        AptRepo {
            dir: dir.to_path_buf(),
            server,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces whatever was published with `version` of the package (a
    /// flat repository: `Packages` and the .deb side by side).
    pub fn publish(&self, version: &str) {
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let build = tempfile::tempdir().unwrap();
        let root = build.path().join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/share").join(PACKAGE)).unwrap();
        std::fs::write(root.join("usr/share").join(PACKAGE).join("version"), version).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n\
                 Maintainer: dclab tests <tests@dclab.invalid>\nDescription: marks a package version\n"
            ),
        )
        .unwrap();
        let deb = format!("{PACKAGE}_{version}_all.deb");
        run(Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(self.dir.join(&deb)));
        let index = run(Command::new("dpkg-scanpackages").arg(".").current_dir(&self.dir));
        std::fs::write(self.dir.join("Packages"), index).unwrap();
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
