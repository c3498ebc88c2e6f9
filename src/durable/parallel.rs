//! Reading many runs' files at once.

/// `f` over `items` on a few plain threads, results in order; the first error wins.
///
/// Not on rayon's pool: polars blocks inside its Parquet reads, and a rayon worker that blocks
/// steals further items onto its own stack, which overflowed with a thousand runs.
pub(crate) fn try_map<I: Sync, T: Send, E: Send>(
    items: &[I],
    f: impl Fn(&I) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    map(items, f).into_iter().collect()
}

/// `f` over `items` on a few plain threads (as [`try_map`]), every result in order.
pub(crate) fn map<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<T>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            out.extend(h.join().expect("a reader thread panicked"));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_returns_the_first_error() {
        let v: Vec<u32> = (0..100).collect();
        assert_eq!(
            super::try_map(&v, |&x| Ok::<_, ()>(x * 2)).unwrap()[99],
            198
        );
        let e = super::try_map(&v, |&x| if x >= 40 { Err(x) } else { Ok(x) });
        assert!(matches!(e, Err(x) if x >= 40));
        assert!(super::try_map(&[] as &[u32], |&x| Ok::<_, ()>(x))
            .unwrap()
            .is_empty());
    }
}
