// workload.rs — what a Rust program asks of the system allocator (Rust's std allocates through
// malloc, calloc, realloc and free, and through posix_memalign for types aligned past 16 bytes):
// strings and vectors grown by realloc, a HashMap and a BTreeMap of a hundred thousand entries,
// zeroed buffers, over-aligned values in boxes and vectors (their alignment checked), and four
// threads whose strings, vectors and boxes are dropped by the main thread (frees from another
// thread). Prints sums that depend only on the values, so every run prints the same lines.
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[repr(align(64))]
#[derive(Clone)]
struct Line([u64; 8]);

#[repr(align(4096))]
struct Page([u8; 4096]);

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn main() {
    // a map of strings to vectors, grown one entry at a time
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..100_000u64 {
        map.entry(format!("key{}", i % 50_000)).or_default().push(i * 3);
    }
    let msum: u64 = map.values().map(|v| v.iter().sum::<u64>()).sum();
    println!("hashmap {} keys, sum {}", map.len(), msum);
    drop(map);

    // an ordered map with boxed values, half of it removed again
    let mut tree: BTreeMap<u64, Box<[u8]>> = BTreeMap::new();
    for i in 0..100_000u64 {
        let value = vec![(i % 251) as u8; (i % 300) as usize].into_boxed_slice();
        tree.insert(i.wrapping_mul(2654435761) % 1_000_003, value);
    }
    let keys: Vec<u64> = tree.keys().step_by(2).cloned().collect();
    for k in keys {
        tree.remove(&k);
    }
    let tsum: u64 = tree.values().map(|b| b.iter().map(|&x| x as u64).sum::<u64>()).sum();
    println!("btreemap {} left, sum {}", tree.len(), tsum);

    // one string grown to 8 MB by pushes (realloc from bytes to megabytes)
    let mut s = String::new();
    for i in 0..1_000_000u32 {
        s.push_str(&format!("{:07}", i));
    }
    println!("string {} bytes, fnv {:016x}", s.len(), fnv(0xcbf29ce484222325, s.as_bytes()));

    // zeroed buffers (calloc) must read zero
    let mut zeros = 0usize;
    for n in [1usize, 100, 4096, 100_000, 3_000_000] {
        let v = vec![0u8; n];
        zeros += v.iter().filter(|&&b| b == 0).count();
    }
    println!("zeroed {} bytes", zeros);

    // over-aligned values: boxes and a vector grown past many reallocations
    let mut lines: Vec<Line> = Vec::new();
    for i in 0..20_000u64 {
        lines.push(Line([i; 8]));
        assert_eq!(lines.as_ptr() as usize % 64, 0, "a Vec<Line> lost its 64-byte alignment");
    }
    let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for p in &pages {
        assert_eq!(&**p as *const Page as usize % 4096, 0, "a Box<Page> is not 4096-aligned");
    }
    let asum: u64 = lines.iter().map(|l| l.0[7]).sum::<u64>()
        + pages.iter().map(|p| p.0[4095] as u64).sum::<u64>();
    println!("aligned {} lines, {} pages, sum {}", lines.len(), pages.len(), asum);

    // four producers; everything they send is dropped here, on another thread
    let (tx, rx) = mpsc::channel::<(String, Vec<u32>, Box<Line>)>();
    let workers: Vec<_> = (0..4u32)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..50_000u32 {
                    let v: Vec<u32> = (0..(i % 40)).map(|k| k ^ t).collect();
                    tx.send((format!("t{}-{}", t, i), v, Box::new(Line([i as u64; 8])))).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let (mut count, mut bytes, mut vsum) = (0u64, 0u64, 0u64);
    for (name, v, line) in rx {
        count += 1;
        bytes += name.len() as u64;
        vsum += v.iter().map(|&x| x as u64).sum::<u64>() + line.0[0];
    }
    for w in workers {
        w.join().unwrap();
    }
    println!("threads: {} messages, {} name bytes, sum {}", count, bytes, vsum);
}
