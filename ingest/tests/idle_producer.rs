//! An idle Kafka log costs no CPU: its delivery thread waits instead of spinning. Its own test
//! binary, so no other test's threads run in the process while it measures.

use std::time::Duration;

use edgelens_ingest::kafka::{KafkaLog, KafkaLogConfig};

/// CPU time, in clock ticks, of this process's threads other than librdkafka's own.
fn own_threads_cpu_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("rdk:") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // After the parenthesised name: utime and stime are the 12th and 13th fields.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks
}

#[test]
fn an_idle_producer_does_not_spin() {
    // No broker needed: librdkafka's own threads retry the connection; the delivery thread only
    // waits.
    let log = KafkaLog::new(&KafkaLogConfig { brokers: "127.0.0.1:1".into(), ack_timeout: Duration::from_secs(2), queue_max_messages: 1000, max_message_bytes: 1 << 20 }).unwrap();
    let before = own_threads_cpu_ticks();
    std::thread::sleep(Duration::from_secs(6));
    let used = own_threads_cpu_ticks() - before;
    // A poll loop spinning through the last millisecond of every 100 ms uses ~60 ms (6 ticks) in
    // 6 s; waiting uses next to nothing.
    assert!(used <= 2, "the producer's threads used {used} ticks in 6 s idle");
    drop(log);
}
