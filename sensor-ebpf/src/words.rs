//! Copies and zeroing of memory without `memmove` or `memset`. LLVM's BPF backend emits a copy it
//! cannot prove free of overlap (a typed write of a value read from other memory) as a call of
//! `memmove`, and the zeroing of a few bytes (`[0; 3]`) as a call of `memset`, which BPF has only
//! as subprograms looping over bytes: a new flow's event (72 bytes) cost 72 iterations of that
//! loop. Volatile accesses keep every copy a load and a store per 8 bytes, and every zeroed byte
//! one store.

/// Copies `words` 8-byte words from `src` to `dst`.
///
/// # Safety
/// Both point at `words` readable (`src`) and writable (`dst`) words, 8-aligned, that do not
/// overlap.
#[inline(always)]
pub(crate) unsafe fn copy_words(dst: *mut u64, src: *const u64, words: usize) {
    let mut i = 0;
    while i < words {
        // SAFETY: as the caller promises.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
}

/// Copies one `T` (8-aligned, its size a whole number of words) from `src` to `dst`.
///
/// # Safety
/// Both point at a valid `T`, and they do not overlap.
#[inline(always)]
pub(crate) unsafe fn copy<T>(dst: *mut T, src: *const T) {
    const {
        assert!(
            core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() >= 8,
            "copied as whole, aligned words"
        )
    };
    // SAFETY: as the caller promises.
    unsafe { copy_words(dst.cast(), src.cast(), core::mem::size_of::<T>() / 8) }
}

/// Zeroes `n` values at `p` (bytes or words) with one store each.
///
/// # Safety
/// `p` points at `n` writable, aligned `T`.
#[inline(always)]
pub(crate) unsafe fn zero<T: Default>(p: *mut T, n: usize) {
    let mut i = 0;
    while i < n {
        // SAFETY: as the caller promises.
        unsafe { core::ptr::write_volatile(p.add(i), T::default()) };
        i += 1;
    }
}
