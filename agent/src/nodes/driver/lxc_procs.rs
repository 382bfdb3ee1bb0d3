//! Which processes of the host belong to a container node, read from
//! /proc. libvirt's destroy of a container whose init is systemd can
//! report success while that init and its services live on (their cgroups
//! are not the ones libvirt kills), re-parented to the host's pid 1. A
//! node's process is known by any of:
//!
//! - `LIBVIRT_LXC_NAME=<domain>` in its environment (libvirt sets it for
//!   the container's init, and children inherit it);
//! - a cgroup path, in any hierarchy (name=systemd and cgroup2 included), with
//!   libvirt's dir of the domain, `lxc-<controller pid>-<domain>.libvirt-lxc`;
//! - the PID namespace of such a process (when it is not the host's);
//! - being a descendant of one (children that cleared their environment
//!   and moved to cgroups of their own, as systemd's services do).
//!
//! Processes of the instance libvirt runs now (named by its controller's
//! pid) are never counted: only what earlier instances left.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;

use super::lxc_cgroups;

/// One process as the scan saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Clock ticks after boot (field 22 of stat): a reused pid differs.
    pub start: u64,
    /// Inode of its PID namespace.
    pub pidns: u64,
    /// `LIBVIRT_LXC_NAME` of its environment.
    pub lxc_name: Option<String>,
    /// (hierarchy, path) of each v1 line of /proc/PID/cgroup.
    pub cgroups: Vec<(String, String)>,
    pub zombie: bool,
}

impl Proc {
    /// The libvirt instances (controller pid, domain) its cgroups name.
    fn instances(&self) -> impl Iterator<Item = (u32, &str)> {
        self.cgroups
            .iter()
            .flat_map(|(_, path)| path.split('/'))
            .filter_map(lxc_cgroups::instance_of)
    }

    /// Its cgroup path in `hierarchy` (as /proc/PID/cgroup names it).
    pub fn cgroup(&self, hierarchy: &str) -> Option<&str> {
        self.cgroups
            .iter()
            .find(|(h, _)| h == hierarchy)
            .map(|(_, p)| p.as_str())
    }
}

/// Every process of the host at one moment.
#[derive(Debug, Default)]
pub struct HostProcs {
    pub procs: Vec<Proc>,
    /// The PID namespace of the agent, which is the host's.
    pub host_pidns: u64,
}

/// Reads /proc. Processes that end during the scan are left out.
pub fn scan() -> HostProcs {
    let host_pidns = pidns_of("self").unwrap_or(0);
    let procs = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default();
    HostProcs { procs, host_pidns }
}

/// One process, or None once it is gone (or a kernel thread's files
/// cannot say anything about it).
pub fn read_proc(pid: i32) -> Option<Proc> {
    let (ppid, start, zombie) = parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let pidns = pidns_of(&pid.to_string()).unwrap_or(0);
    let lxc_name = fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|env| lxc_name(&env));
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|t| parse_cgroups(&t))
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid,
        start,
        pidns,
        lxc_name,
        cgroups,
        zombie,
    })
}

fn pidns_of(pid: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    // "pid:[4026531836]"
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// (ppid, start time, zombie) from /proc/PID/stat; the command name in
/// parentheses may hold spaces and parentheses, so fields count from
/// the last ')'.
pub fn parse_stat(stat: &str) -> Option<(i32, u64, bool)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let state = fields.first()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start, *state == "Z" || *state == "X"))
}

fn lxc_name(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"LIBVIRT_LXC_NAME="))
        .map(|name| String::from_utf8_lossy(name).into_owned())
}

/// The lines of a /proc/PID/cgroup table: (hierarchy dir under
/// /sys/fs/cgroup, path). `name=systemd` is mounted as `systemd`, the
/// cgroup2 hierarchy of the hybrid layout as `unified` (libvirt does not
/// use it, but the node's init joins it and its systemd tracks units there).
fn parse_cgroups(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let hierarchy = match controllers {
                "" => "unified",
                c => c.strip_prefix("name=").unwrap_or(c),
            };
            Some((hierarchy.to_string(), path.to_string()))
        })
        .collect()
}

impl HostProcs {
    /// Processes of `domain` but those of the instance whose controller
    /// is `keep` (the one running now): what earlier instances left.
    /// Never the agent itself nor the host's pid 1.
    pub fn leftovers(&self, domain: &str, keep: Option<u32>) -> Vec<&Proc> {
        // Neither they nor what descends from them (everything, for pid 1).
        let mut never = self.instance(domain, keep);
        never.extend([1, std::process::id() as i32]);
        let seeds = self.procs.iter().filter(|p| {
            p.lxc_name.as_deref() == Some(domain)
                || p.instances()
                    .any(|(controller, d)| d == domain && Some(controller) != keep)
        });
        let mut members: HashSet<i32> = HashSet::new();
        let mut namespaces: HashSet<u64> = HashSet::new();
        for p in seeds.filter(|p| !never.contains(&p.pid)) {
            members.insert(p.pid);
            if p.pidns != self.host_pidns && p.pidns != 0 {
                namespaces.insert(p.pidns);
            }
        }
        for p in &self.procs {
            if namespaces.contains(&p.pidns) && !never.contains(&p.pid) {
                members.insert(p.pid);
            }
        }
        let members = self.with_descendants(members, &never);
        self.procs
            .iter()
            .filter(|p| members.contains(&p.pid) && !p.zombie)
            .collect()
    }

    /// The pids of the running instance `keep` of `domain`: its controller,
    /// what sits in its cgroups or in its init's PID namespace, and their
    /// descendants.
    fn instance(&self, domain: &str, keep: Option<u32>) -> HashSet<i32> {
        let Some(controller) = keep else {
            return HashSet::new();
        };
        let controller = controller as i32;
        let namespaces: HashSet<u64> = self
            .procs
            .iter()
            .filter(|p| p.ppid == controller && p.pidns != self.host_pidns)
            .map(|p| p.pidns)
            .collect();
        let seeds = self
            .procs
            .iter()
            .filter(|p| {
                p.pid == controller
                    || namespaces.contains(&p.pidns)
                    || p.instances().any(|(c, d)| d == domain && c as i32 == controller)
            })
            .map(|p| p.pid)
            .collect();
        self.with_descendants(seeds, &HashSet::new())
    }

    /// `pids` and every process below them, but not below `stop`.
    fn with_descendants(&self, mut pids: HashSet<i32>, stop: &HashSet<i32>) -> HashSet<i32> {
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in &self.procs {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut todo: Vec<i32> = pids.iter().copied().collect();
        while let Some(pid) = todo.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                if !stop.contains(child) && pids.insert(*child) {
                    todo.push(*child);
                }
            }
        }
        pids
    }

    /// Domains whose name starts with `prefix` that processes name in their
    /// environment, with how many processes each.
    pub fn lxc_names(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut names = BTreeMap::new();
        for name in self.procs.iter().filter_map(|p| p.lxc_name.as_deref()) {
            if name.starts_with(prefix) {
                *names.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "dclab.lab.c1";
    const HOST: u64 = 1;

    fn proc(pid: i32, ppid: i32, pidns: u64, env: Option<&str>, cgroup: &str) -> Proc {
        Proc {
            pid,
            ppid,
            start: 100,
            pidns,
            lxc_name: env.map(String::from),
            cgroups: vec![
                ("memory".into(), cgroup.into()),
                ("systemd".into(), cgroup.into()),
            ],
            zombie: false,
        }
    }

    fn pids(procs: &HostProcs, keep: Option<u32>) -> Vec<i32> {
        let mut pids: Vec<i32> = procs.leftovers(D, keep).iter().map(|p| p.pid).collect();
        pids.sort();
        pids
    }

    /// An old instance (controller 10, gone) whose init 11 lives on with a
    /// service that moved to the host's root cgroup and cleared its
    /// environment, and a child of it; a new instance (controller 20, init
    /// 21); another node's init; an unrelated host process.
    fn host() -> HostProcs {
        let old = format!("/machine/lxc-10-{D}.libvirt-lxc");
        let new = format!("/machine/lxc-20-{D}.libvirt-lxc");
        HostProcs {
            host_pidns: HOST,
            procs: vec![
                proc(1, 0, HOST, None, "/"),
                proc(11, 1, 7, Some(D), &old),
                proc(12, 11, 7, None, "/system.slice/nova.service"),
                proc(13, 12, 7, None, "/"),
                proc(20, 5, HOST, None, "/"),
                proc(21, 20, 8, Some(D), &new),
                proc(22, 21, 8, Some(D), &format!("{new}/system.slice/ssh.service")),
                proc(
                    31,
                    30,
                    9,
                    Some("dclab.lab.c2"),
                    "/machine/lxc-30-dclab.lab.c2.libvirt-lxc",
                ),
                proc(40, 1, HOST, None, "/user.slice"),
            ],
        }
    }

    #[test]
    fn an_earlier_instance_is_found_whole_and_the_running_one_kept() {
        assert_eq!(pids(&host(), Some(20)), [11, 12, 13]);
    }

    #[test]
    fn with_no_instance_running_every_process_of_the_domain_is_left_over() {
        // The controller (20) is libvirt's, in none of the node's cgroups.
        assert_eq!(pids(&host(), None), [11, 12, 13, 21, 22]);
    }

    #[test]
    fn a_process_known_only_by_its_cgroup_and_its_descendants_are_found() {
        let procs = HostProcs {
            host_pidns: HOST,
            procs: vec![
                proc(50, 1, HOST, None, &format!("/machine/lxc-10-{D}.libvirt-lxc/x")),
                proc(51, 50, HOST, None, "/"),
                proc(52, 1, HOST, None, "/machine/lxc-10-dclab.lab.c10.libvirt-lxc"),
            ],
        };
        assert_eq!(pids(&procs, Some(20)), [50, 51]);
    }

    #[test]
    fn zombies_the_host_init_and_the_agent_are_never_targets() {
        let mut procs = host();
        procs.procs[1].zombie = true;
        procs
            .procs
            .push(proc(std::process::id() as i32, 1, HOST, Some(D), "/"));
        procs.procs[0].lxc_name = Some(D.into());
        assert_eq!(pids(&procs, Some(20)), [12, 13]);
    }

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some((17, 987654, false)));
        assert_eq!(
            parse_stat("1 (x) Z 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").map(|s| s.2),
            Some(true)
        );
    }

    #[test]
    fn the_environment_and_cgroup_table_are_read() {
        assert_eq!(
            lxc_name(b"PATH=/bin\0LIBVIRT_LXC_NAME=dclab.a.b\0container=lxc-libvirt\0"),
            Some("dclab.a.b".into())
        );
        assert_eq!(lxc_name(b"PATH=/bin\0"), None);
        assert_eq!(
            parse_cgroups("12:name=systemd:/a\n4:cpu,cpuacct:/b\n0::/c\n"),
            [
                ("systemd".to_string(), "/a".to_string()),
                ("cpu,cpuacct".into(), "/b".into()),
                ("unified".into(), "/c".into())
            ]
        );
    }

    #[test]
    fn names_with_the_prefix_are_counted() {
        let names = host().lxc_names("dclab.");
        assert_eq!(names.get(D), Some(&3));
        assert_eq!(names.get("dclab.lab.c2"), Some(&1));
    }
}
