//! This process's mappings of rdmix's shared memory, from /proc/self/maps. Shared with the
//! hostile helper (`tests/fakedev/src/hostile.rs`), which includes this file by path.

/// One mapping of /proc/self/maps whose name mentions rdmix's shared memory.
#[derive(Debug)]
pub struct Map {
    pub start: usize,
    pub end: usize,
    pub perms: String,
    pub name: String,
}

/// This process's mappings of rdmix's shared memory.
pub fn rdmix_maps() -> Vec<Map> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("memfd:rdmix"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let (s, e) = range.split_once('-')?;
            Some(Map {
                start: usize::from_str_radix(s, 16).ok()?,
                end: usize::from_str_radix(e, 16).ok()?,
                perms: perms.to_string(),
                name: l.split_whitespace().skip(5).collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}
