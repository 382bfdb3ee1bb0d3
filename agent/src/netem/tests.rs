//! First the pure parts (validation, the impairer on a fake clock, wire
//! frames), then real relays between network namespaces, run as root:
//! `cargo test -p dclab-agent netem -- --test-threads=1 --nocapture`
//! prints what each of those measured.

mod topo;

use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use super::impair::{serialization, Impairer, Rng};
use super::sock;
use super::stats::DirCounters;
use super::wire::{fold, insert_vlan, sum_words, to_wire, VnetHdr};
use super::{Netem, NetemError, Relay};
use dclab_proto::v1;
use topo::{Topo, IP2};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- validate

#[test]
fn validate_accepts_the_default_and_real_settings() {
    Netem::default().validate().unwrap();
    let n = Netem {
        settings: v1::NetemFault {
            delay_ms: 100.0,
            jitter_ms: 200.0,
            loss_pct: 100.0,
            duplicate_pct: 0.5,
            corrupt_pct: 0.1,
            reorder_pct: 25.0,
            rate_kbit: 2000,
        },
        limit: 10,
    };
    n.validate().unwrap();
}

#[test]
fn validate_rejects_negative_too_large_and_nan_naming_the_field() {
    let cases: [(&str, Netem); 8] = [
        (
            "delay_ms",
            Netem::of(v1::NetemFault {
                delay_ms: -1.0,
                ..Default::default()
            }),
        ),
        (
            "jitter_ms",
            Netem::of(v1::NetemFault {
                jitter_ms: f64::NAN,
                ..Default::default()
            }),
        ),
        (
            "delay_ms",
            Netem::of(v1::NetemFault {
                delay_ms: f64::INFINITY,
                ..Default::default()
            }),
        ),
        (
            "loss_pct",
            Netem::of(v1::NetemFault {
                loss_pct: 100.5,
                ..Default::default()
            }),
        ),
        (
            "loss_pct",
            Netem::of(v1::NetemFault {
                loss_pct: f64::NAN,
                ..Default::default()
            }),
        ),
        (
            "duplicate_pct",
            Netem::of(v1::NetemFault {
                duplicate_pct: -0.1,
                ..Default::default()
            }),
        ),
        (
            "corrupt_pct",
            Netem::of(v1::NetemFault {
                corrupt_pct: 250.0,
                ..Default::default()
            }),
        ),
        (
            "reorder_pct",
            Netem::of(v1::NetemFault {
                reorder_pct: 10.0,
                ..Default::default()
            }),
        ),
    ];
    for (field, netem) in cases {
        let err = netem.validate().unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, NetemError::Invalid { field: f, .. } if f == field),
            "{msg}"
        );
        assert!(msg.contains(field), "{msg}");
        assert!(
            msg.contains("0..=") || msg.contains("delay_ms is set"),
            "no allowed range: {msg}"
        );
    }
    let msg = Netem::of(v1::NetemFault {
        loss_pct: f64::NAN,
        ..Default::default()
    })
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(
        msg,
        "netem loss_pct = NaN is out of range: must be a percentage in 0..=100"
    );
}

#[test]
fn start_refuses_bad_settings_before_touching_anything() {
    let bad = Netem::of(v1::NetemFault {
        loss_pct: -5.0,
        ..Default::default()
    });
    let err = Relay::start(Some("no-such-netns"), "a", "b", Netem::default(), bad)
        .err()
        .unwrap();
    assert!(err.to_string().contains("b_to_a.loss_pct"), "{err}");
    let err = Relay::start(None, "x0", "x0", Netem::default(), Netem::default())
        .err()
        .unwrap();
    assert!(matches!(err, NetemError::SameInterface(_)), "{err}");
}

// ---------------------------------------------------------------- impairer

fn impairer(netem: Netem) -> (Impairer, DirCounters) {
    (Impairer::new(netem, Rng::new(7)), DirCounters::default())
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    vec![tag; len]
}

#[test]
fn delay_releases_frames_at_their_time_in_order() {
    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        delay_ms: 50.0,
        ..Default::default()
    }));
    let t0 = Instant::now();
    imp.offer(frame(100, 1), t0, &c);
    imp.offer(frame(100, 2), t0 + ms(1), &c);
    assert_eq!(imp.next_due(), Some(t0 + ms(50)));
    assert_eq!(imp.pop_due(t0 + ms(49)), None);
    assert_eq!(imp.pop_due(t0 + ms(60)).unwrap()[0], 1);
    assert_eq!(imp.pop_due(t0 + ms(60)).unwrap()[0], 2);
    assert_eq!(imp.next_due(), None);
}

#[test]
fn jitter_stays_within_its_bounds_and_never_before_arrival() {
    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        delay_ms: 10.0,
        jitter_ms: 20.0,
        ..Default::default()
    }));
    let t0 = Instant::now();
    for _ in 0..1000 {
        imp.offer(frame(60, 0), t0, &c);
    }
    let mut at_once = 0;
    while let Some(due) = imp.next_due() {
        assert!(due >= t0 && due <= t0 + ms(30), "{:?}", due - t0);
        at_once += usize::from(due == t0);
        imp.pop_due(due).unwrap();
    }
    // Delay + jitter is below 0 for a quarter of the draws: clamped to 0.
    assert!((150..350).contains(&at_once), "{at_once}");
}

#[test]
fn rate_spaces_frames_by_their_serialization_time() {
    // 8000 kbit: one byte per microsecond.
    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        rate_kbit: 8000,
        ..Default::default()
    }));
    assert_eq!(serialization(1000, 8000), ms(1));
    let t0 = Instant::now();
    for tag in 0..3 {
        imp.offer(frame(1000, tag), t0, &c);
    }
    for k in 1..=3 {
        assert_eq!(imp.next_due(), Some(t0 + ms(k)));
        imp.pop_due(t0 + ms(k)).unwrap();
    }
    // An idle link does not bank credit: the next frame starts now.
    imp.offer(frame(500, 9), t0 + ms(10), &c);
    assert_eq!(imp.next_due(), Some(t0 + ms(10) + Duration::from_micros(500)));
}

#[test]
fn the_queue_limit_drops_like_a_full_fifo() {
    let (mut imp, c) = impairer(Netem {
        settings: v1::NetemFault {
            delay_ms: 10.0,
            ..Default::default()
        },
        limit: 5,
    });
    let t0 = Instant::now();
    for _ in 0..8 {
        imp.offer(frame(60, 0), t0, &c);
    }
    let s = c.snapshot();
    assert_eq!(s.overflowed, 3);
}

#[test]
fn loss_duplicate_and_reorder_hit_their_share() {
    let t0 = Instant::now();
    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        loss_pct: 30.0,
        ..Default::default()
    }));
    for _ in 0..10_000 {
        imp.offer(frame(60, 0), t0, &c);
    }
    let dropped = c.snapshot().dropped;
    assert!((2800..3200).contains(&dropped), "{dropped}");

    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        duplicate_pct: 100.0,
        ..Default::default()
    }));
    for _ in 0..10 {
        imp.offer(frame(60, 0), t0, &c);
    }
    let mut out = 0;
    while imp.pop_due(t0).is_some() {
        out += 1;
    }
    assert_eq!((c.snapshot().duplicated, out), (10, 20));

    let (mut imp, c) = impairer(Netem {
        settings: v1::NetemFault {
            delay_ms: 100.0,
            reorder_pct: 25.0,
            ..Default::default()
        },
        limit: 10_000,
    });
    for _ in 0..10_000 {
        imp.offer(frame(60, 0), t0, &c);
    }
    let mut now = 0;
    while imp.pop_due(t0).is_some() {
        now += 1;
    }
    assert!((2300..2700).contains(&now), "{now}");
}

#[test]
fn corrupt_flips_exactly_one_bit_past_the_ethernet_header() {
    let (mut imp, c) = impairer(Netem::of(v1::NetemFault {
        corrupt_pct: 100.0,
        ..Default::default()
    }));
    let t0 = Instant::now();
    for _ in 0..200 {
        imp.offer(vec![0u8; 64], t0, &c);
        let f = imp.pop_due(t0).unwrap();
        assert!(f[..14].iter().all(|&b| b == 0));
        assert_eq!(f.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
    }
    assert_eq!(c.snapshot().corrupted, 200);
}

// ---------------------------------------------------------------- wire frames

/// An independent checker: one's complement sum 16 bits at a time.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            sum += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum as u16
}

/// True when IPv4/IPv6 + TCP/UDP checksums of an untagged frame verify.
fn checksums_ok(f: &[u8]) -> bool {
    let v4 = f[14] >> 4 == 4;
    let (l4, proto, pseudo_addrs) = if v4 {
        let ihl = usize::from(f[14] & 15) * 4;
        if ones_sum(&[&f[14..14 + ihl]]) != 0xffff {
            return false;
        }
        (14 + ihl, f[23], &f[26..34])
    } else {
        (54, f[20], &f[22..54])
    };
    let len = (f.len() - l4) as u16;
    let pseudo = [0, proto, (len >> 8) as u8, len as u8];
    ones_sum(&[pseudo_addrs, &pseudo, &f[l4..]]) == 0xffff
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Ethernet + IPv4 + TCP (ACK|PSH|FIN) carrying `payload`.
fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 99, 0, 1, 10, 99, 0, 2]);
    f.extend_from_slice(&[
        0x30, 0x39, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x19, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Ethernet + IPv6 + UDP carrying `payload`.
fn udp6(payload: &[u8]) -> Vec<u8> {
    let mut f = eth(0x86dd);
    let plen = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 17, 64]);
    f.extend_from_slice(&[0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, (plen >> 8) as u8, plen as u8, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_partial_checksum_is_completed() {
    let mut f = tcp4(&payload(999));
    // What the kernel leaves for offload: the pseudo-header sum, uncomplemented.
    let len = (f.len() - 34) as u16;
    let seed = fold(sum_words(&f[26..34], 6 + u64::from(len)));
    f[50..52].copy_from_slice(&seed.to_be_bytes());
    let ipsum = !ones_sum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&ipsum.to_be_bytes());
    assert!(!checksums_ok(&f));
    let hdr = VnetHdr {
        flags: 1,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let mut out = Vec::new();
    assert_eq!(to_wire(&hdr, &f, &mut out), Ok(false));
    assert_eq!(out.len(), 1);
    assert!(checksums_ok(&out[0]));
    assert_eq!(out[0][..50], f[..50]);
}

#[test]
fn a_tcp_super_frame_becomes_mss_sized_frames() {
    let data = payload(3000);
    let f = tcp4(&data);
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 1,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut out = Vec::new();
    assert_eq!(to_wire(&hdr, &f, &mut out), Ok(true));
    let sizes: Vec<usize> = out.iter().map(|s| s.len() - 54).collect();
    assert_eq!(sizes, [1448, 1448, 104]);
    let mut joined = Vec::new();
    for (i, s) in out.iter().enumerate() {
        assert!(checksums_ok(s), "segment {i}");
        assert_eq!(
            usize::from(u16::from_be_bytes([s[16], s[17]])),
            s.len() - 14,
            "IP total length"
        );
        assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16, "IP id");
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 0x1000 + 1448 * i as u32);
        // PSH and FIN only on the last segment.
        assert_eq!(s[47], if i == 2 { 0x19 } else { 0x10 });
        joined.extend_from_slice(&s[54..]);
    }
    assert_eq!(joined, data);
}

#[test]
fn a_udp_super_frame_over_ipv6_becomes_datagrams() {
    let f = udp6(&payload(2500));
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 5,
        gso_size: 1000,
        csum_start: 54,
        csum_offset: 6,
    };
    let mut out = Vec::new();
    assert_eq!(to_wire(&hdr, &f, &mut out), Ok(true));
    assert_eq!(out.len(), 3);
    for s in &out {
        assert!(checksums_ok(s));
        let plen = usize::from(u16::from_be_bytes([s[18], s[19]]));
        assert_eq!(plen, s.len() - 54, "IPv6 payload length");
        assert_eq!(
            usize::from(u16::from_be_bytes([s[58], s[59]])),
            plen,
            "UDP length"
        );
    }
    assert_eq!(out[2].len() - 62, 500);
}

#[test]
fn unsplittable_or_malformed_super_frames_are_refused() {
    let f = udp6(&payload(2500));
    let ufo = VnetHdr {
        flags: 1,
        gso_type: 3,
        gso_size: 1000,
        csum_start: 54,
        csum_offset: 6,
    };
    assert!(to_wire(&ufo, &f, &mut Vec::new()).is_err());
    let beyond = VnetHdr {
        flags: 1,
        gso_type: 1,
        gso_size: 1000,
        csum_start: 9000,
        csum_offset: 16,
    };
    assert!(to_wire(&beyond, &f, &mut Vec::new()).is_err());
    let partial_beyond = VnetHdr {
        flags: 1,
        csum_start: 9000,
        ..VnetHdr::default()
    };
    assert!(to_wire(&partial_beyond, &f, &mut Vec::new()).is_err());
}

#[test]
fn a_vlan_tag_goes_back_after_the_macs() {
    let mut f = eth(0x0800);
    insert_vlan(&mut f, 0x8100, 100);
    assert_eq!(f[12..], [0x81, 0x00, 0x00, 100, 0x08, 0x00]);
}

// ---------------------------------------------------------------- real relays

fn start(topo: &Topo, a_to_b: Netem, b_to_a: Netem) -> Relay {
    Relay::start(Some(&topo.nsm), "a", "b", a_to_b, b_to_a).expect("start relay")
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn relay_without_impairment_passes_everything_and_idles_at_no_cpu() {
    let topo = Topo::new("plain");
    let relay = start(&topo, Netem::default(), Netem::default());
    // ARP is dynamic here: broadcast and replies cross the relay too.
    let ping = topo.ping(IP2, 20, "0.05");
    eprintln!(
        "control: {}/{} received, avg {:?} ms",
        ping.received, ping.transmitted, ping.avg_ms
    );
    assert_eq!((ping.transmitted, ping.received), (20, 20), "{}", ping.text);
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_time() - before;
    eprintln!("idle relay: {idle:?} CPU in 1 s");
    assert!(idle < ms(20), "idle relay used {idle:?} of CPU in 1 s");
    let s = relay.stop();
    eprintln!("stats: {s:?}");
    assert!(s.a_to_b.received >= 21 && s.b_to_a.received >= 21, "{s:?}");
    assert_eq!(s.a_to_b.sent, s.a_to_b.received, "{s:?}");
    assert_eq!(
        s.a_to_b.rx_errors + s.a_to_b.tx_errors + s.b_to_a.rx_errors + s.b_to_a.tx_errors,
        0
    );
}

#[test]
fn relay_delay_adds_to_the_round_trip() {
    let topo = Topo::new("delay");
    topo.static_neighbors();
    let relay = start(&topo, Netem::default(), Netem::default());
    let control = topo.ping(IP2, 20, "0.05");
    relay.stop();
    let delay = Netem::of(v1::NetemFault {
        delay_ms: 50.0,
        ..Default::default()
    });
    let relay = start(&topo, delay, delay);
    let delayed = topo.ping(IP2, 20, "0.05");
    relay.stop();
    let (c, d) = (control.avg_ms.unwrap(), delayed.avg_ms.expect("delayed replies"));
    eprintln!(
        "delay: control avg {c:.3} ms, 50+50 ms avg {d:.3} ms (min {:.3} max {:.3}), added {:.3} ms",
        delayed.times_ms.iter().cloned().fold(f64::MAX, f64::min),
        delayed.times_ms.iter().cloned().fold(0.0, f64::max),
        d - c
    );
    eprintln!("delayed replies: {:?}", delayed.times_ms);
    assert_eq!(delayed.received, 20, "{}", delayed.text);
    assert!((90.0..130.0).contains(&(d - c)), "added {} ms", d - c);
}

#[test]
fn relay_jitter_spreads_the_round_trip() {
    let topo = Topo::new("jitter");
    topo.static_neighbors();
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            delay_ms: 50.0,
            jitter_ms: 20.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    let ping = topo.ping(IP2, 50, "0.02");
    relay.stop();
    let (min, max) = (
        ping.times_ms.iter().cloned().fold(f64::MAX, f64::min),
        ping.times_ms.iter().cloned().fold(0.0, f64::max),
    );
    eprintln!(
        "jitter 50±20 ms: avg {:?} mdev {:?} min {min} max {max}",
        ping.avg_ms, ping.mdev_ms
    );
    assert_eq!(ping.received, 50, "{}", ping.text);
    // Never under the delay minus the jitter. Above its top only by the
    // scheduling noise of a loaded 2-core machine, which can stretch a
    // single round trip well past it (86.5 ms seen in CI): so the bound is
    // on the 90th percentile, not on the maximum.
    let mut sorted = ping.times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted[sorted.len() * 9 / 10];
    assert!(min >= 29.9 && p90 <= 75.0, "min {min} p90 {p90} max {max}");
    assert!(ping.mdev_ms.unwrap() > 5.0, "{:?}", ping.mdev_ms);
}

#[test]
fn relay_loss_drops_its_share() {
    let topo = Topo::new("loss");
    topo.static_neighbors();
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            loss_pct: 30.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    let ping = topo.ping(IP2, 200, "0.01");
    let s = relay.stop();
    eprintln!(
        "loss 30 %: ping loss {:.1} % ({} of {}), stats {:?}",
        ping.loss_pct(),
        ping.received,
        ping.transmitted,
        s
    );
    assert_eq!(ping.transmitted, 200);
    assert!((15.0..45.0).contains(&ping.loss_pct()), "{}", ping.text);
    assert!(s.a_to_b.dropped > 0 && s.b_to_a.dropped == 0, "{s:?}");
    assert_eq!(s.a_to_b.sent + s.a_to_b.dropped, s.a_to_b.received, "{s:?}");
}

#[test]
fn relay_duplicate_shows_dup_replies() {
    let topo = Topo::new("dup");
    topo.static_neighbors();
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            duplicate_pct: 100.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    let ping = topo.ping(IP2, 5, "0.1");
    let s = relay.stop();
    eprintln!(
        "duplicate 100 %: {} replies + {} duplicates, stats {:?}",
        ping.received, ping.duplicates, s.a_to_b
    );
    assert!(ping.text.contains("DUP!"), "{}", ping.text);
    // ping may end on its 5th reply, before the 5th duplicate.
    assert!(ping.received == 5 && ping.duplicates >= 4, "{}", ping.text);
    assert!(s.a_to_b.duplicated >= 5, "{s:?}");
}

#[test]
fn relay_reorder_lets_a_share_overtake() {
    let topo = Topo::new("reorder");
    topo.static_neighbors();
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            delay_ms: 100.0,
            reorder_pct: 50.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    let ping = topo.ping(IP2, 100, "0.01");
    relay.stop();
    // On a loaded 2-core machine a reply "at once" can take tens of ms.
    let fast = ping.times_ms.iter().filter(|&&t| t < 50.0).count();
    let slow = ping.times_ms.iter().filter(|&&t| t >= 99.0).count();
    eprintln!("reorder 50 % of 100 ms: {fast} replies at once, {slow} delayed");
    assert_eq!(fast + slow, 100, "{}", ping.text);
    assert!((30..70).contains(&fast), "{fast}");
}

#[test]
fn relay_rate_limits_tcp() {
    let topo = Topo::new("rate");
    topo.eth0_tx_offload_off();
    let relay = start(&topo, Netem::default(), Netem::default());
    let free = topo.iperf_mbit();
    let free_stats = relay.stop();
    let rate = Netem::of(v1::NetemFault {
        rate_kbit: 2000,
        ..Default::default()
    });
    let relay = start(&topo, rate, rate);
    let limited = topo.iperf_mbit();
    let s = relay.stop();
    eprintln!("rate: unlimited {free:.1} Mbit/s ({free_stats:?}), 2000 kbit {limited:.3} Mbit/s ({s:?})");
    assert!(free > 50.0, "unlimited {free} Mbit/s");
    assert!((1.2..2.5).contains(&limited), "limited {limited} Mbit/s");
}

#[test]
fn relay_splits_super_frames_from_offloading_peers() {
    // eth0s keep their defaults (TSO, checksum offload): the relay gets
    // 64 KiB frames with partial checksums and must split them.
    let topo = Topo::new("tso");
    let relay = start(&topo, Netem::default(), Netem::default());
    let mbit = topo.iperf_mbit();
    let s = relay.stop();
    eprintln!("TSO peers: {mbit:.1} Mbit/s, stats {s:?}");
    assert!(mbit > 50.0, "{mbit} Mbit/s");
    assert!(s.a_to_b.segmented > 0, "no super-frame seen: {s:?}");
    assert_eq!(s.a_to_b.rx_errors + s.b_to_a.rx_errors, 0, "{s:?}");
}

#[test]
fn relay_corrupt_breaks_ip_checksums() {
    let topo = Topo::new("corrupt");
    topo.static_neighbors();
    let relay = start(&topo, Netem::default(), Netem::default());
    assert_eq!(topo.ping(IP2, 3, "0.05").received, 3, "control ping");
    relay.stop();
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            corrupt_pct: 100.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    let ping = topo.ping(IP2, 10, "0.05");
    let s = relay.stop();
    eprintln!(
        "corrupt 100 %: {}/{} replies, stats {:?}",
        ping.received, ping.transmitted, s.a_to_b
    );
    assert_eq!(ping.received, 0, "{}", ping.text);
    assert!(s.a_to_b.corrupted >= 10 && s.a_to_b.sent >= 10, "{s:?}");
}

/// Runs `work` on a thread inside namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        sock::enter_netns(&ns).expect("enter namespace");
        work()
    })
    .join()
    .expect("namespace thread")
}

/// A frame from ns1's eth0 to ns2's, of the local experimental type
/// 0x88b5, tagged when `tci` is given.
fn experimental_frame(tci: Option<u16>, text: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0x99, 0, 0, 0, 2, 0x02, 0x99, 0, 0, 0, 1];
    if let Some(tci) = tci {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(text);
    f.resize(f.len().max(64), 0);
    f
}

#[test]
fn relay_keeps_vlan_tags() {
    // No 8021q here, so raw frames: the kernel moves a received tag out
    // of the frame (into auxdata) on every hop, and the relay must put it
    // back or the peer gets the frame untagged.
    let topo = Topo::new("vlan");
    let relay = start(&topo, Netem::default(), Netem::default());
    let rx = in_netns(&topo.ns2, || {
        let fd = sock::packet_socket(true).unwrap();
        let index = sock::ifindex(&fd, "eth0").unwrap();
        sock::prepare_rx(&fd).unwrap();
        sock::bind(&fd, index, libc::ETH_P_ALL as u16).unwrap();
        fd
    });
    let sent = [
        (Some(0x2064), &b"tagged, prio 1 vid 100"[..]),
        (None, &b"untagged"[..]),
    ];
    let frames: Vec<Vec<u8>> = sent
        .iter()
        .map(|(tci, text)| experimental_frame(*tci, text))
        .collect();
    in_netns(&topo.ns1, move || {
        let fd = sock::packet_socket(false).unwrap();
        let index = sock::ifindex(&fd, "eth0").unwrap();
        sock::bind(&fd, index, 0).unwrap();
        for f in frames {
            sock::send(&fd, &f).unwrap();
        }
    });
    let stop = sock::eventfd().unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < 2 && Instant::now() < deadline {
        sock::wait(rx.as_raw_fd(), stop.as_raw_fd(), Some(ms(100))).unwrap();
        while let Some(r) = sock::recv(&rx, &mut buf).unwrap() {
            let frame = &buf[super::wire::VNET_HDR_LEN..r.len];
            if frame[12..14] == [0x88, 0xb5] {
                got.push((r.vlan, frame[14..].to_vec()));
            }
        }
    }
    let s = relay.stop();
    eprintln!(
        "vlan: ns2 got {:?}; relay {:?}",
        got.iter().map(|(v, _)| v).collect::<Vec<_>>(),
        s.a_to_b
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, Some((0x8100, 0x2064)));
    assert!(got[0].1.starts_with(sent[0].1));
    assert_eq!(got[1].0, None);
    assert!(got[1].1.starts_with(sent[1].1));
}

#[test]
fn relay_stop_is_prompt_and_leaves_no_path() {
    let topo = Topo::new("stop");
    topo.static_neighbors();
    topo.exec(&topo.nsm, &["ethtool", "-K", "a", "gro", "on"]);
    let relay = start(
        &topo,
        Netem::of(v1::NetemFault {
            delay_ms: 200.0,
            ..Default::default()
        }),
        Netem::default(),
    );
    assert!(
        !topo.gro_on("a") && !topo.gro_on("b"),
        "GRO still on while relaying"
    );
    assert!(
        topo.link_details("a").contains("promiscuity 1"),
        "{}",
        topo.link_details("a")
    );
    assert_eq!(topo.ping(IP2, 3, "0.1").received, 3);
    // Frames still in the delay queue must not hold stop up.
    let mut pinger = std::process::Command::new("ip")
        .args([
            "netns", "exec", &topo.ns1, "ping", "-c", "5", "-i", "0.02", "-W", "1", IP2,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn ping");
    std::thread::sleep(ms(60));
    let t = Instant::now();
    let s = relay.stop();
    let took = t.elapsed();
    let _ = pinger.wait();
    eprintln!("stop took {took:?}; stats {s:?}");
    assert!(took < ms(100), "stop took {took:?}");
    for dev in ["a", "b"] {
        let details = topo.link_details(dev);
        assert!(
            details.contains(",UP") && details.contains("promiscuity 0"),
            "{details}"
        );
    }
    assert!(topo.gro_on("a") && !topo.gro_on("b"), "GRO not as it was");
    let ping = topo.ping(IP2, 3, "0.1");
    eprintln!("without relay: {}/{} replies", ping.received, ping.transmitted);
    assert_eq!(ping.received, 0, "a path without the relay: {}", ping.text);
    let relay = start(&topo, Netem::default(), Netem::default());
    let ping = topo.ping(IP2, 3, "0.1");
    eprintln!("new relay: {}/{} replies", ping.received, ping.transmitted);
    assert_eq!(ping.received, 3, "{}", ping.text);
    drop(relay);
}

#[test]
fn relay_errors_name_the_namespace_and_interface() {
    let topo = Topo::new("errors");
    let err = Relay::start(Some(&topo.nsm), "a", "nope0", Netem::default(), Netem::default())
        .err()
        .unwrap();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("nope0") && msg.contains(&topo.nsm) && msg.contains("No such device"),
        "{msg}"
    );
    assert!(
        topo.link_details("a").contains("promiscuity 0"),
        "a half-started relay left a trace"
    );
    let err = Relay::start(
        Some("dclab-no-such-netns"),
        "a",
        "b",
        Netem::default(),
        Netem::default(),
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("dclab-no-such-netns") && msg.contains("No such file"),
        "{msg}"
    );
}
