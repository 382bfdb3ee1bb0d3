//! An interpreter of installed flows across hosts joined by a dumb switch.
//! One field of a packet may be left open (its destination address): a
//! table lookup then splits the packet into the parts of that field that
//! different flows take, so one trace covers every destination a source
//! can address, grouped as the flows group them.

use std::collections::HashMap;

use super::ofp::{Act, Cond, Field, Flow, REGS};
use super::ranges::Ranges;

const MAX_DEPTH: u32 = 64;
/// Bridges a copy may cross before it counts as looping.
const MAX_HOSTS: usize = 4;

/// One host's bridge: its flows, indexed per table.
pub struct Bridge {
    pub host: String,
    pub mac: u64,
    pub flows: Vec<Flow>,
    pub uplink: u32,
    /// Every OpenFlow port, for flooding.
    pub ports: Vec<u32>,
    tables: HashMap<u8, Table>,
}

/// Flows of a table by the values of one or two fields most of them match
/// exactly, plus those that do not: a lookup looks at one bucket and the
/// rest. `open` is the index for packets whose destination is open.
struct Table {
    by: Index,
    open: Index,
}

struct Index {
    fields: Vec<Field>,
    buckets: HashMap<u64, Vec<u32>>,
    /// Flows without an exact value of every index field.
    rest: Vec<u32>,
    /// Every flow of the table, best first (when an index field is open).
    all: Vec<u32>,
}

fn exact(flow: &Flow, field: Field) -> Option<u64> {
    flow.conds
        .iter()
        .find(|c| c.field == field && c.mask == full_mask(field))
        .map(|c| c.value)
}

fn full_mask(field: Field) -> u64 {
    match field {
        Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => 0xffff_ffff_ffff,
        Field::EthType | Field::ArpOp | Field::TpDst | Field::VlanTci => 0xffff,
        Field::IpProto => 0xff,
        Field::IpSrc | Field::IpDst | Field::ArpSpa | Field::ArpTpa | Field::Reg(_) => 0xffff_ffff,
        Field::InPort | Field::Metadata => u64::MAX,
    }
}

const INDEXABLE: [Field; 8] = [
    Field::InPort,
    Field::Reg(0),
    Field::IpDst,
    Field::ArpTpa,
    Field::EthDst,
    Field::EthSrc,
    Field::IpSrc,
    Field::Reg(3),
];

/// One bucket key from the values of the index fields (a collision only
/// adds candidates: every candidate's matches are still checked).
fn key(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ v).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Index {
    /// Indexed by the field, or pair of fields, that tells the most flows
    /// apart among those that match it exactly, covering at least half of
    /// the table. Fields in `skip` (an open destination) are not used.
    fn build(flows: &[Flow], ids: &[u32], skip: &[Field]) -> Index {
        let usable: Vec<Field> = INDEXABLE.into_iter().filter(|f| !skip.contains(f)).collect();
        let mut choices: Vec<Vec<Field>> = usable.iter().map(|f| vec![*f]).collect();
        for (i, a) in usable.iter().enumerate() {
            for b in &usable[i + 1..] {
                choices.push(vec![*a, *b]);
            }
        }
        let score = |fields: &[Field]| {
            let mut keys: Vec<u64> = ids
                .iter()
                .filter_map(|i| {
                    let values: Option<Vec<u64>> =
                        fields.iter().map(|f| exact(&flows[*i as usize], *f)).collect();
                    values.map(|v| key(v.into_iter()))
                })
                .collect();
            let covered = keys.len();
            keys.sort_unstable();
            keys.dedup();
            (covered, keys.len())
        };
        let fields = choices
            .into_iter()
            .map(|c| (score(&c), c))
            .filter(|((covered, distinct), _)| *distinct > 1 && covered * 2 >= ids.len())
            .max_by_key(|((covered, distinct), c)| (*distinct, *covered, std::cmp::Reverse(c.len())))
            .map(|(_, c)| c)
            .unwrap_or_default();
        let mut index = Index {
            fields,
            buckets: HashMap::new(),
            rest: Vec::new(),
            all: ids.to_vec(),
        };
        for &id in ids {
            let values: Option<Vec<u64>> = index
                .fields
                .iter()
                .map(|f| exact(&flows[id as usize], *f))
                .collect();
            match values.filter(|v| !v.is_empty()) {
                Some(v) => index.buckets.entry(key(v.into_iter())).or_default().push(id),
                None => index.rest.push(id),
            }
        }
        index
    }

    /// Candidate flows for `pkt`, best first.
    fn candidates<'a>(&'a self, flows: &'a [Flow], pkt: &Pkt) -> Merge<'a> {
        let none: &[u32] = &[];
        if self.fields.iter().any(|f| pkt.is_open(*f)) {
            return Merge {
                flows,
                a: &self.all,
                b: none,
            };
        }
        let bucket = if self.fields.is_empty() {
            none
        } else {
            let k = key(self.fields.iter().map(|f| pkt.get(*f)));
            self.buckets.get(&k).map_or(none, Vec::as_slice)
        };
        Merge {
            flows,
            a: bucket,
            b: &self.rest,
        }
    }
}

/// Two lists of flows, each best first, walked as one.
struct Merge<'a> {
    flows: &'a [Flow],
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for Merge<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let rank = |i: u32| (std::cmp::Reverse(self.flows[i as usize].priority), i);
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(&x), Some(&y)) => rank(x) <= rank(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

impl Bridge {
    pub fn new(host: String, mac: u64, flows: Vec<Flow>, uplink: u32, ports: Vec<u32>) -> Bridge {
        let mut by_table: HashMap<u8, Vec<u32>> = HashMap::new();
        let mut order: Vec<u32> = (0..flows.len() as u32).collect();
        order.sort_by_key(|i| (std::cmp::Reverse(flows[*i as usize].priority), *i));
        for i in order {
            by_table.entry(flows[i as usize].table).or_default().push(i);
        }
        let tables = by_table
            .into_iter()
            .map(|(t, ids)| {
                let by = Index::build(&flows, &ids, &[]);
                let open = Index::build(&flows, &ids, &[Field::IpDst, Field::ArpTpa]);
                (t, Table { by, open })
            })
            .collect();
        Bridge {
            host,
            mac,
            flows,
            uplink,
            ports,
            tables,
        }
    }
}

/// A packet as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkt {
    pub in_port: u32,
    pub eth_src: u64,
    pub eth_dst: u64,
    /// The ethertype behind the VLAN headers.
    pub eth_type: u64,
    /// (TPID, TCI), outermost first.
    pub vlans: Vec<(u16, u16)>,
    pub ip_src: u64,
    pub ip_dst: u64,
    pub ip_proto: u64,
    pub arp_op: u64,
    pub arp_spa: u64,
    pub arp_tpa: u64,
    pub arp_sha: u64,
    pub arp_tha: u64,
    pub tp_dst: u64,
    pub regs: [u64; REGS],
    pub metadata: u64,
    /// The field left open and the values it may still have.
    pub open: Option<(Field, Ranges)>,
}

impl Pkt {
    pub fn is_open(&self, f: Field) -> bool {
        self.open.as_ref().is_some_and(|(o, _)| *o == f)
    }

    /// As OvS parses the frame (`vlan-limit` 1): behind a second VLAN
    /// header the ethertype is that header's TPID and nothing above L2 is
    /// parsed.
    fn l2_type(&self) -> u64 {
        match self.vlans.len() {
            0 | 1 => self.eth_type,
            _ => u64::from(self.vlans[1].0),
        }
    }

    pub fn get(&self, f: Field) -> u64 {
        if let Some((o, set)) = &self.open {
            if *o == f {
                return set.min().unwrap_or(0);
            }
        }
        match f {
            Field::InPort => u64::from(self.in_port),
            Field::EthSrc => self.eth_src,
            Field::EthDst => self.eth_dst,
            Field::EthType => self.l2_type(),
            Field::VlanTci => self.vlans.first().map_or(0, |(_, tci)| u64::from(tci | 0x1000)),
            Field::IpSrc => self.ip_src,
            Field::IpDst => self.ip_dst,
            Field::IpProto => self.ip_proto,
            Field::ArpOp => self.arp_op,
            Field::ArpSpa => self.arp_spa,
            Field::ArpTpa => self.arp_tpa,
            Field::ArpSha => self.arp_sha,
            Field::ArpTha => self.arp_tha,
            Field::TpDst => self.tp_dst,
            Field::Reg(r) => self.regs[usize::from(r)],
            Field::Metadata => self.metadata,
        }
    }

    pub fn set(&mut self, f: Field, v: u64) {
        if self.is_open(f) {
            self.open = None;
        }
        let v = v & full_mask(f);
        match f {
            Field::InPort => self.in_port = v as u32,
            Field::EthSrc => self.eth_src = v,
            Field::EthDst => self.eth_dst = v,
            Field::EthType => self.eth_type = v,
            Field::VlanTci => {
                if let Some(first) = self.vlans.first_mut() {
                    first.1 = (v & 0xefff) as u16;
                }
            }
            Field::IpSrc => self.ip_src = v,
            Field::IpDst => self.ip_dst = v,
            Field::IpProto => self.ip_proto = v,
            Field::ArpOp => self.arp_op = v,
            Field::ArpSpa => self.arp_spa = v,
            Field::ArpTpa => self.arp_tpa = v,
            Field::ArpSha => self.arp_sha = v,
            Field::ArpTha => self.arp_tha = v,
            Field::TpDst => self.tp_dst = v,
            Field::Reg(r) => self.regs[usize::from(r)] = v,
            Field::Metadata => self.metadata = v,
        }
    }

    fn l3_parsed(&self, f: Field) -> bool {
        let ip = matches!(f, Field::IpSrc | Field::IpDst | Field::IpProto | Field::TpDst);
        let arp = matches!(
            f,
            Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha
        );
        (!ip || self.l2_type() == 0x0800) && (!arp || self.l2_type() == 0x0806)
    }
}

/// A flow (by index into its bridge) or a table's miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Flow(u32),
    Miss(u8),
}

#[derive(Debug, Clone)]
struct World {
    pkt: Pkt,
    outputs: Vec<(u32, Pkt)>,
    path: Vec<Hit>,
    /// The part of the open field's first values this world stands for.
    origin: Option<Ranges>,
    controller: bool,
    looped: bool,
}

impl World {
    fn narrow(&mut self, part: &Ranges) {
        if let Some((_, set)) = &mut self.pkt.open {
            *set = part.clone();
            self.origin = Some(part.clone());
        }
    }
}

/// Where one part of a probe ended up.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The values of the open field this leaf stands for (None: not open).
    pub origin: Option<Ranges>,
    /// (bridge index, OpenFlow port, packet) of every copy delivered.
    pub deliveries: Vec<(usize, u32, Pkt)>,
    /// (bridge index that sent it, packet) of every copy on the wire.
    pub wire: Vec<(usize, Pkt)>,
    /// Every flow it went through: (bridge index, hit).
    pub path: Vec<(usize, Hit)>,
    pub controller: bool,
    pub looped: bool,
}

/// Bridges joined by a switch that knows each host's MAC.
pub struct Net {
    pub bridges: Vec<Bridge>,
    by_mac: HashMap<u64, usize>,
}

impl Net {
    pub fn new(bridges: Vec<Bridge>) -> Net {
        let by_mac = bridges.iter().enumerate().map(|(i, b)| (b.mac, i)).collect();
        Net { bridges, by_mac }
    }

    /// Sends `pkt` into bridge `from` and follows every copy.
    pub fn send(&self, from: usize, pkt: Pkt) -> Vec<Leaf> {
        let origin = pkt.open.as_ref().map(|(_, s)| s.clone());
        let start = World {
            pkt,
            outputs: vec![],
            path: vec![],
            origin,
            controller: false,
            looped: false,
        };
        let worlds = self.run_table(from, 0, start, 0);
        worlds.into_iter().map(|w| self.finish(from, w)).collect()
    }

    /// Delivers a world's local copies and carries its uplink copies on.
    fn finish(&self, from: usize, w: World) -> Leaf {
        let mut leaf = Leaf {
            origin: w.origin,
            deliveries: vec![],
            wire: vec![],
            path: w.path.into_iter().map(|h| (from, h)).collect(),
            controller: w.controller,
            looped: w.looped,
        };
        let mut queue: Vec<(usize, u32, Pkt, usize)> =
            w.outputs.into_iter().map(|(p, k)| (from, p, k, 1)).collect();
        while let Some((host, port, pkt, hops)) = queue.pop() {
            if port != self.bridges[host].uplink {
                leaf.deliveries.push((host, port, pkt));
                continue;
            }
            leaf.wire.push((host, pkt.clone()));
            if hops > MAX_HOSTS {
                leaf.looped = true;
                continue;
            }
            let targets: Vec<usize> = match self.by_mac.get(&pkt.eth_dst) {
                Some(h) => vec![*h],
                None => (0..self.bridges.len()).filter(|h| *h != host).collect(),
            };
            for target in targets {
                let mut arriving = pkt.clone();
                // Registers and metadata do not cross hosts; an address
                // still open on the wire is followed for one value.
                arriving.regs = [0; REGS];
                arriving.metadata = 0;
                arriving.in_port = self.bridges[target].uplink;
                if let Some((f, set)) = arriving.open.take() {
                    arriving.set(f, set.min().unwrap_or(0));
                }
                let world = World {
                    pkt: arriving,
                    outputs: vec![],
                    path: vec![],
                    origin: None,
                    controller: false,
                    looped: false,
                };
                for w in self.run_table(target, 0, world, 0) {
                    leaf.path.extend(w.path.iter().map(|h| (target, *h)));
                    leaf.controller |= w.controller;
                    leaf.looped |= w.looped;
                    queue.extend(w.outputs.into_iter().map(|(p, k)| (target, p, k, hops + 1)));
                }
            }
        }
        leaf
    }

    fn run_table(&self, host: usize, table: u8, mut w: World, depth: u32) -> Vec<World> {
        if depth > MAX_DEPTH {
            w.looped = true;
            return vec![w];
        }
        let bridge = &self.bridges[host];
        let Some(t) = bridge.tables.get(&table) else {
            w.path.push(Hit::Miss(table));
            return vec![w];
        };
        let open = w.pkt.open.is_some();
        let index = if open { &t.open } else { &t.by };
        let candidates = index.candidates(&bridge.flows, &w.pkt);
        let Some((field, set)) = w.pkt.open.clone() else {
            let hit = candidates
                .into_iter()
                .find(|i| bridge.flows[*i as usize].conds.iter().all(|c| holds(&w.pkt, c)));
            return match hit {
                Some(i) => {
                    w.path.push(Hit::Flow(i));
                    self.run_actions(host, &bridge.flows[i as usize].acts, w, depth)
                }
                None => {
                    w.path.push(Hit::Miss(table));
                    vec![w]
                }
            };
        };
        // Split the open field among the flows that would take its values.
        let mut remaining = set;
        let mut out = Vec::new();
        for i in candidates {
            if remaining.is_empty() {
                break;
            }
            let flow = &bridge.flows[i as usize];
            let mut part = remaining.clone();
            let mut matched = true;
            for c in &flow.conds {
                if c.field == field && w.pkt.l3_parsed(field) {
                    match Ranges::masked(c.value, c.mask) {
                        Some(r) => part = part.intersect(&r),
                        None => matched &= holds(&w.pkt, c),
                    }
                } else {
                    matched &= holds(&w.pkt, c);
                }
                if !matched || part.is_empty() {
                    break;
                }
            }
            if !matched || part.is_empty() {
                continue;
            }
            remaining = remaining.subtract(&part);
            let mut branch = w.clone();
            branch.narrow(&part);
            branch.path.push(Hit::Flow(i));
            out.extend(self.run_actions(host, &flow.acts, branch, depth));
        }
        if !remaining.is_empty() {
            let mut miss = w;
            miss.narrow(&remaining);
            miss.path.push(Hit::Miss(table));
            out.push(miss);
        }
        out
    }

    /// Runs `acts` on `w`; only a resubmit can split it into several.
    fn run_actions(&self, host: usize, acts: &[Act], mut w: World, depth: u32) -> Vec<World> {
        let bridge = &self.bridges[host];
        for (i, act) in acts.iter().enumerate() {
            match act {
                Act::Output(port) => output(&mut w, *port),
                Act::OutputReg(r) => {
                    let port = w.pkt.regs[usize::from(*r)] as u32;
                    output(&mut w, port);
                }
                Act::InPort => w.outputs.push((w.pkt.in_port, w.pkt.clone())),
                Act::Flood => {
                    for &port in &bridge.ports {
                        output(&mut w, port);
                    }
                }
                Act::Controller => w.controller = true,
                Act::Set(f, v) => w.pkt.set(*f, *v),
                Act::Move(from, to) => {
                    let v = w.pkt.get(*from);
                    w.pkt.set(*to, v);
                }
                Act::Resubmit { port, table } => {
                    let saved = w.pkt.in_port;
                    if let Some(p) = port {
                        w.pkt.in_port = *p;
                    }
                    let mut out = self.run_table(host, *table, w, depth + 1);
                    for o in &mut out {
                        o.pkt.in_port = saved;
                    }
                    let rest = &acts[i + 1..];
                    if rest.is_empty() {
                        return out;
                    }
                    if out.len() == 1 {
                        w = out.pop().expect("one world");
                        continue;
                    }
                    return out
                        .into_iter()
                        .flat_map(|o| self.run_actions(host, rest, o, depth))
                        .collect();
                }
                Act::PushVlan => w.pkt.vlans.insert(0, (0x8100, 0)),
                Act::PopVlan => {
                    if !w.pkt.vlans.is_empty() {
                        w.pkt.vlans.remove(0);
                    }
                }
                Act::Drop | Act::Nothing => {}
            }
        }
        vec![w]
    }
}

/// OvS never sends a packet back out of its input port unless told to.
fn output(w: &mut World, port: u32) {
    if port != w.pkt.in_port && port != 0 {
        w.outputs.push((port, w.pkt.clone()));
    }
}

fn holds(pkt: &Pkt, c: &Cond) -> bool {
    pkt.l3_parsed(c.field) && pkt.get(c.field) & c.mask == c.value
}
