//! Reusable scratch buffers for column matrices: allocating tens of megabytes per convolution
//! call costs page faults and zeroing on every call; a small pool keeps a few buffers warm.

use std::sync::Mutex;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Buffers kept between calls (a convolution uses up to three at once: input copy, column
/// matrix, packed output).
const KEEP: usize = 4;

/// A buffer of `len` floats with unspecified (but initialised) contents; callers overwrite it.
pub struct Scratch(Vec<f32>);

impl Scratch {
    pub fn new(len: usize) -> Scratch {
        let mut v = {
            let mut pool = POOL.lock().unwrap();
            // The smallest pooled buffer that is big enough, else the biggest one (to grow).
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
                .map(|(i, _)| i);
            pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
        };
        if v.len() < len {
            v.resize(len, 0.0);
        } else {
            v.truncate(len);
        }
        Scratch(v)
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let mut pool = POOL.lock().unwrap();
        pool.push(v);
        if pool.len() > KEEP {
            // Drop the smallest.
            let i = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
                .unwrap();
            pool.swap_remove(i);
        }
    }
}
