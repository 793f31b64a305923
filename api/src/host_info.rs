//! `sys/host-info`'s facts about the machine, in the shape Vault answers (gopsutil's
//! field names), read from Linux's `/proc` and `statvfs`. A fact that cannot be read is
//! left out, as Vault leaves out what gopsutil cannot collect.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Linux reports CPU times in clock ticks of 1/100 s (`USER_HZ`) on every architecture
/// this appliance runs on.
const TICKS_PER_SECOND: f64 = 100.0;

pub fn collect() -> Value {
    let mut data = Map::new();
    data.insert("timestamp".into(), Value::from(now()));
    if let Some(cpu) = cpu() {
        data.insert("cpu".into(), cpu);
    }
    if let Some(times) = cpu_times() {
        data.insert("cpu_times".into(), times);
    }
    if let Some(disk) = disk("/") {
        data.insert("disk".into(), Value::Array(vec![disk]));
    }
    data.insert("host".into(), host());
    if let Some(memory) = memory() {
        data.insert("memory".into(), memory);
    }
    Value::Object(data)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn cpu() -> Option<Value> {
    let text = read("/proc/cpuinfo")?;
    let cpus: Vec<Value> = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let f: BTreeMap<&str, &str> = block
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let get = |k: &str| f.get(k).copied().unwrap_or_default();
            let num = |k: &str| get(k).parse::<u64>().unwrap_or(0);
            json!({
                "cpu": num("processor"),
                "vendorId": get("vendor_id"),
                "family": get("cpu family"),
                "model": get("model"),
                "stepping": num("stepping"),
                "physicalId": get("physical id"),
                "coreId": get("core id"),
                "cores": num("cpu cores").max(1),
                "modelName": get("model name"),
                "mhz": get("cpu MHz").parse::<f64>().unwrap_or(0.0),
                "cacheSize": get("cache size").split_whitespace().next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
                "flags": get("flags").split_whitespace().collect::<Vec<_>>(),
                "microcode": get("microcode"),
            })
        })
        .collect();
    (!cpus.is_empty()).then_some(Value::Array(cpus))
}

fn cpu_times() -> Option<Value> {
    let stat = read("/proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse::<f64>().unwrap_or(0.0) / TICKS_PER_SECOND)
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    Some(json!([{
        "cpu": "cpu-total",
        "user": at(0), "nice": at(1), "system": at(2), "idle": at(3), "iowait": at(4),
        "irq": at(5), "softirq": at(6), "steal": at(7), "guest": at(8), "guestNice": at(9),
    }]))
}

fn disk(path: &str) -> Option<Value> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let block = s.fragment_size() as u64;
    let total = s.blocks() as u64 * block;
    let free = s.blocks_available() as u64 * block;
    let used = total.saturating_sub(s.blocks_free() as u64 * block);
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let inodes_total = s.files() as u64;
    let inodes_free = s.files_free() as u64;
    let inodes_used = inodes_total.saturating_sub(inodes_free);
    Some(json!({
        "path": path,
        "fstype": fstype(path).unwrap_or_default(),
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": percent(used, used + free),
        "inodesTotal": inodes_total,
        "inodesUsed": inodes_used,
        "inodesFree": inodes_free,
        "inodesUsedPercent": percent(inodes_used, inodes_total),
    }))
}

fn fstype(path: &str) -> Option<String> {
    read("/proc/self/mounts")?.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
        (mount == path).then(|| kind.to_string())
    })
}

fn host() -> Value {
    let trimmed = |p: &str| read(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let uptime = read("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let boot_time = read("/proc/stat")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    let os_release: BTreeMap<String, String> = read("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    let release = |k: &str| os_release.get(k).cloned().unwrap_or_default();
    json!({
        "hostname": trimmed("/proc/sys/kernel/hostname"),
        "uptime": uptime,
        "bootTime": boot_time,
        "procs": procs,
        "os": std::env::consts::OS,
        "platform": release("ID"),
        "platformFamily": release("ID_LIKE"),
        "platformVersion": release("VERSION_ID"),
        "kernelVersion": trimmed("/proc/sys/kernel/osrelease"),
        "kernelArch": std::env::consts::ARCH,
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostId": trimmed("/etc/machine-id"),
    })
}

fn memory() -> Option<Value> {
    let info = read("/proc/meminfo")?;
    let kb: BTreeMap<&str, u64> = info
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k, v.split_whitespace().next()?.parse::<u64>().ok()? * 1024))
        })
        .collect();
    let get = |k: &str| kb.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let available = get("MemAvailable");
    let used = total.saturating_sub(available);
    Some(json!({
        "total": total,
        "available": available,
        "used": used,
        "usedPercent": if total == 0 { 0.0 } else { used as f64 * 100.0 / total as f64 },
        "free": get("MemFree"),
        "buffers": get("Buffers"),
        "cached": get("Cached"),
        "swapTotal": get("SwapTotal"),
        "swapFree": get("SwapFree"),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_is_described() {
        let v = super::collect();
        assert!(v["host"]["hostname"].is_string(), "{v}");
        assert!(v["memory"]["total"].as_u64().unwrap_or(0) > 0, "{v}");
        assert!(v["disk"][0]["total"].as_u64().unwrap_or(0) > 0, "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
    }
}
