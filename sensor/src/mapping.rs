//! Memory mappings the agent owns, unmapped on drop: anonymous memory (the AF_XDP UMEM,
//! `capture::afxdp`) and a BPF map's values (`RECENT`, `bpf::recent`).

use std::{io, os::fd::RawFd, ptr::NonNull};

/// A page-aligned, readable and writable mapping, unmapped on drop.
pub struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    /// `len` bytes of anonymous private memory.
    pub fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    /// The first `len` bytes of what `fd` maps, shared with everything else that maps it (a BPF
    /// map made with `BPF_F_MMAPABLE`: its values, as the program sees them).
    pub fn shared(fd: RawFd, len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED, fd)
    }

    fn map(len: usize, flags: libc::c_int, fd: RawFd) -> io::Result<Self> {
        // SAFETY: a new mapping at an address of the kernel's choosing touches no existing memory;
        // the kernel checks `fd` and `len` against what `fd` can map.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Self { ptr, len })
    }

    /// The mapping's start.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The mapping's bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it maps no bytes (never: `mmap` refuses a length of 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping as a raw slice.
    pub fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; whoever owns the area keeps every
        // use of it within its life (`XskSocket` drops its socket and rings first, by field order).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
