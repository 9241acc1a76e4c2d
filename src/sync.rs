//! The concurrency shim: std atomics normally, loom's under
//! `--cfg shmchan_loom`, so the ring and the wake protocol read the same in
//! both builds.
//!
//! The data region is reached only through [`Region`]. Under std it is a raw
//! pointer into the segment; under loom it is a slice of
//! `loom::cell::UnsafeCell<u64>`, one cell per 8-byte word, so that loom sees
//! every payload access and reports a publish with a missing Release/Acquire
//! as a data race.
//!
//! A `Region<'a>` borrows its memory for `'a`. Its atomic words are safe to
//! use from anywhere; every plain access (a copy in or out, a word read or
//! written, zeroing, a slice) is `unsafe`: the caller states that the ring
//! protocol gives it that range (a committed, unreleased record to read;
//! reserved, unpublished space to write), so no other thread or process
//! touches it meanwhile.

#[cfg(not(shmchan_loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(shmchan_loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A retry loop's pause: a spin hint, or under loom a yield (so that the
/// models let the thread being waited for run).
#[inline]
pub fn spin_hint() {
    #[cfg(not(shmchan_loom))]
    std::hint::spin_loop();
    #[cfg(shmchan_loom)]
    loom::thread::yield_now();
}

#[cfg(not(shmchan_loom))]
mod region {
    use std::marker::PhantomData;
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    use std::ptr;

    /// Bulk zeroing of shared memory with the x86-64 string instruction
    /// `rep stosq`. Inline assembly is outside Rust's memory model (to the
    /// compiler it is code it cannot see, like a foreign call), so a peer
    /// that writes the same bytes meanwhile is no data race in this
    /// process, as with word-by-word atomics; and it runs at memset's
    /// speed, which word-sized atomics, never merged into vector stores,
    /// do not (they halved an MPSC receiver's throughput at 1 KiB, zeroing
    /// what it released). `rep movsb` for the copies was measured too and
    /// kept out: at 64 KiB it streamed a quarter slower than the word
    /// loop, and at 1 KiB its round trip was 15 % longer.
    #[cfg(target_arch = "x86_64")]
    mod bulk {
        /// Below this many bytes the word loop is as fast.
        pub(super) const MIN: usize = 256;

        /// Zeroes `n` 8-byte words at `dst`.
        ///
        /// # Safety
        /// `dst` is 8-aligned and valid for writes of `n` words.
        #[inline]
        pub(super) unsafe fn zero_words(dst: *mut u64, n: usize) {
            // SAFETY: the caller's contract; `rep stosq` stores rax (0)
            // into rcx words from rdi, forwards (the direction flag is
            // clear on entry to asm!, and the instruction leaves the flags
            // alone).
            unsafe {
                core::arch::asm!(
                    "rep stosq",
                    inout("rcx") n => _,
                    inout("rdi") dst => _,
                    in("rax") 0u64,
                    options(nostack, preserves_flags)
                )
            }
        }
    }

    /// The data region of a ring: `len` bytes, 8-byte aligned, borrowed
    /// for `'a`.
    ///
    /// Offsets passed to its methods are checked against `len` (a failed
    /// check panics: callers validate every offset read from shared memory
    /// first, so a panic here is a bug in this crate, never bad input).
    #[derive(Debug, Clone, Copy)]
    pub struct Region<'a> {
        base: *mut u8,
        len: usize,
        _memory: PhantomData<&'a [u8]>,
    }

    // SAFETY: Region is a pointer and a length; the safe methods are
    // atomics, and every plain access is an unsafe method whose caller
    // states that the ring protocol gives it the range, whatever the thread.
    unsafe impl Send for Region<'_> {}
    // SAFETY: as above.
    unsafe impl Sync for Region<'_> {}

    impl<'a> Region<'a> {
        /// # Safety
        /// `base` must be 8-byte aligned and valid for reads and writes of
        /// `len` bytes for `'a`.
        pub unsafe fn from_raw(base: *mut u8, len: usize) -> Region<'a> {
            debug_assert_eq!(base as usize % 8, 0);
            Region {
                base,
                len,
                _memory: PhantomData,
            }
        }

        /// Length in bytes.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether the region is empty.
        #[cfg(any(shmchan_loom, feature = "internals"))]
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        #[inline]
        fn check(&self, off: usize, n: usize) {
            assert!(
                off <= self.len && n <= self.len - off,
                "region access {off}+{n} outside {}",
                self.len
            );
        }

        /// Reads the 8-byte word at `off` (a multiple of 8) exactly once.
        ///
        /// # Safety
        /// No other thread or process writes the word during the call (the
        /// ring protocol gives the caller the record it belongs to).
        #[cfg(any(shmchan_loom, feature = "internals"))]
        #[inline]
        pub unsafe fn read_u64(&self, off: usize) -> u64 {
            self.check(off, 8);
            debug_assert_eq!(off % 8, 0);
            // SAFETY: in bounds (checked) and aligned (base and off are
            // multiples of 8); unraced by the caller's contract. Volatile:
            // the value is read once, so a peer changing it cannot make a
            // checked value differ from the used one.
            unsafe { ptr::read_volatile(self.base.add(off).cast::<u64>()) }
        }

        /// Writes the 8-byte word at `off` (a multiple of 8).
        ///
        /// # Safety
        /// No other thread or process accesses the word during the call
        /// (the ring protocol gives the caller the space it belongs to).
        #[cfg(any(shmchan_loom, feature = "internals", test))]
        #[inline]
        pub unsafe fn write_u64(&self, off: usize, v: u64) {
            self.check(off, 8);
            debug_assert_eq!(off % 8, 0);
            // SAFETY: in bounds (checked) and aligned, see read_u64;
            // unraced by the caller's contract.
            unsafe { ptr::write_volatile(self.base.add(off).cast::<u64>(), v) }
        }

        /// The 8-byte word at `off` (a multiple of 8) as an atomic: the
        /// record headers that several producers publish (MPSC).
        #[inline]
        pub(crate) fn atomic_u64(&self, off: usize) -> &'a super::AtomicU64 {
            self.check(off, 8);
            assert_eq!(off % 8, 0, "unaligned atomic word {off}");
            // SAFETY: in bounds (checked) and 8-aligned (base and off are
            // multiples of 8); AtomicU64 has the size and alignment of u64
            // and may be shared between threads and processes; the memory
            // lives as long as the region's contract says.
            unsafe { &*self.base.add(off).cast::<super::AtomicU64>() }
        }

        /// The `n` 8-byte words from `off` (a multiple of 8) as atomics,
        /// bounds-checked once (the copies' loops).
        #[inline]
        fn atomic_words(&self, off: usize, n: usize) -> &'a [super::AtomicU64] {
            self.check(off, n.saturating_mul(8));
            assert_eq!(off % 8, 0, "unaligned copy {off}");
            // SAFETY: in bounds (checked) and 8-aligned, as in atomic_u64;
            // n words of AtomicU64 are n * 8 bytes.
            unsafe { std::slice::from_raw_parts(self.base.add(off).cast::<super::AtomicU64>(), n) }
        }

        /// Appends the `len` bytes at `off` (a multiple of 8) to `out`,
        /// read word by word with Relaxed atomic loads: never a reference
        /// to, nor a plain read of, memory that another process may write,
        /// so a peer writing the range meanwhile changes what is copied and
        /// nothing else (safe whatever the ring protocol's state). Public
        /// (through `internals` only) for the fuzz targets and the models.
        pub fn copy_out(&self, off: usize, len: usize, out: &mut Vec<u8>) {
            let words = self.atomic_words(off, len.div_ceil(8));
            let start = out.len();
            out.resize(start + words.len() * 8, 0);
            for (word, dst) in words.iter().zip(out[start..].chunks_exact_mut(8)) {
                // Relaxed: the record was published by the Acquire load
                // that found it; this only copies its words.
                dst.copy_from_slice(&word.load(super::Ordering::Relaxed).to_ne_bytes());
            }
            out.truncate(start + len);
        }

        /// Copies `src` to `off` (a multiple of 8), word by word with
        /// Relaxed atomic stores, the last word padded with zeros: never a
        /// plain write to memory that another process may write, so a
        /// peer writing the range meanwhile changes what is stored and
        /// nothing else in this process.
        ///
        /// # Safety
        /// `[off, off + src.len()` rounded up to 8) is the caller's: no
        /// reference of this process (a `Message`, a `Grant`) views it,
        /// and no endpoint of this process reads it meanwhile (a record's
        /// space reserved and not committed yet). Public (through
        /// `internals` only) for the fuzz targets and the models.
        #[inline]
        pub unsafe fn copy_in(&self, off: usize, src: &[u8]) {
            let words = self.atomic_words(off, src.len().div_ceil(8));
            let chunks = src.chunks_exact(8);
            let rest = chunks.remainder();
            for (word, chunk) in words.iter().zip(chunks) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                // Relaxed: the commit that follows (a Release store)
                // publishes the record; this only stores its words.
                word.store(u64::from_ne_bytes(w), super::Ordering::Relaxed);
            }
            if let (false, Some(word)) = (rest.is_empty(), words.last()) {
                let mut last = [0u8; 8];
                last[..rest.len()].copy_from_slice(rest);
                // Relaxed: as above; the bytes past the payload are the
                // record's padding, the caller's too.
                word.store(u64::from_ne_bytes(last), super::Ordering::Relaxed);
            }
        }

        /// Writes zeros to `n` bytes at `off` (both multiples of 8), word
        /// by word with Relaxed atomic stores: as [`Region::copy_in`], a
        /// peer writing the range meanwhile changes what ends up there and
        /// nothing else in this process.
        ///
        /// # Safety
        /// The range is the caller's: no reference of this process views
        /// it, and no endpoint of this process reads it meanwhile (for the
        /// consumer: records it has read and not yet released).
        #[inline]
        pub unsafe fn zero(&self, off: usize, n: usize) {
            assert!(n.is_multiple_of(8), "unaligned zeroing {off}+{n}");
            let words = self.atomic_words(off, n / 8);
            #[cfg(target_arch = "x86_64")]
            if n >= bulk::MIN {
                // SAFETY: the n bytes at off are the checked range
                // (atomic_words), 8-aligned, the caller's.
                unsafe { bulk::zero_words(self.base.add(off).cast::<u64>(), n / 8) };
                return;
            }
            for word in words {
                // Relaxed: the Release store of head that follows
                // publishes the zeros (see Cursor::release_to).
                word.store(0, super::Ordering::Relaxed);
            }
        }

        /// Copies `src` to `off` (the channel's senders use
        /// [`Region::copy_in`]).
        ///
        /// # Safety
        /// No other thread or process accesses the range during the call.
        #[cfg(any(shmchan_loom, feature = "internals", test))]
        #[inline]
        pub unsafe fn write(&self, off: usize, src: &[u8]) {
            self.check(off, src.len());
            // SAFETY: the destination range is in bounds (checked), the
            // caller's alone, and does not overlap src (a Rust reference:
            // not into the region while the caller holds it exclusively).
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), src.len()) }
        }

        /// Copies `dst.len()` bytes from `off` into `dst`.
        ///
        /// # Safety
        /// No other thread or process writes the range during the call.
        #[cfg(any(shmchan_loom, feature = "internals", test))]
        #[inline]
        pub unsafe fn read(&self, off: usize, dst: &mut [u8]) {
            self.check(off, dst.len());
            // SAFETY: the source range is in bounds (checked) and unwritten
            // meanwhile; dst is a unique reference, so it does not overlap.
            unsafe { ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), dst.len()) }
        }

        /// A shared view of `len` bytes at `off`.
        ///
        /// # Safety
        /// The ring protocol must give the caller the range for reading
        /// (a committed, unreleased record) for the lifetime `'s`, which
        /// must not outlive `'a`.
        #[inline]
        pub unsafe fn slice<'s>(&self, off: usize, len: usize) -> &'s [u8] {
            self.check(off, len);
            // SAFETY: in bounds (checked); the caller owns the range for 's.
            unsafe { std::slice::from_raw_parts(self.base.add(off), len) }
        }

        /// An exclusive view of `len` bytes at `off`.
        ///
        /// # Safety
        /// The ring protocol must give the caller the range for writing
        /// (reserved, unpublished space) for the lifetime `'s`, which must
        /// not outlive `'a`.
        #[inline]
        #[allow(clippy::mut_from_ref)]
        pub unsafe fn slice_mut<'s>(&self, off: usize, len: usize) -> &'s mut [u8] {
            self.check(off, len);
            // SAFETY: in bounds (checked); the caller owns the range for 's.
            unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) }
        }
    }
}

#[cfg(shmchan_loom)]
mod region {
    use loom::cell::UnsafeCell;
    use std::marker::PhantomData;

    /// The data region under loom: one tracked cell per 8-byte word, and
    /// one loom atomic per word for the words the MPSC ring accesses as
    /// record headers (payload goes through the cells, headers through the
    /// atomics; zeroing clears both, which is what a real word holds). The
    /// word copies (`copy_in`, `copy_out`) use the atomics too: payload
    /// that readers may legitimately race with (an overwriting broadcast
    /// publisher's next lap), checked by the protocol, not by loom's cells.
    #[derive(Debug, Clone, Copy)]
    pub struct Region<'a> {
        cells: *const UnsafeCell<u64>,
        atoms: *const super::AtomicU64,
        len: usize,
        _memory: PhantomData<&'a [u64]>,
    }

    // SAFETY: a pointer and a length; access follows the ring protocol,
    // which loom checks.
    unsafe impl Send for Region<'_> {}
    // SAFETY: as above.
    unsafe impl Sync for Region<'_> {}

    impl<'a> Region<'a> {
        /// # Safety
        /// `cells` and `atoms` must each point to `len / 8` elements that
        /// live for `'a`.
        pub unsafe fn from_cells(
            cells: *const UnsafeCell<u64>,
            atoms: *const super::AtomicU64,
            len: usize,
        ) -> Region<'a> {
            Region {
                cells,
                atoms,
                len,
                _memory: PhantomData,
            }
        }

        /// Length in bytes.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether the region is empty.
        #[cfg(any(shmchan_loom, feature = "internals", test))]
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        fn cell(&self, word: usize) -> &'a UnsafeCell<u64> {
            assert!(
                word < self.len / 8,
                "region word {word} outside {}",
                self.len
            );
            // SAFETY: in bounds (checked); the cells outlive self.
            unsafe { &*self.cells.add(word) }
        }

        /// The header word at `off` as an atomic (see the type's docs).
        pub(crate) fn atomic_u64(&self, off: usize) -> &'a super::AtomicU64 {
            assert!(off.is_multiple_of(8) && off < self.len, "atomic word {off}");
            // SAFETY: in bounds (checked); the atoms outlive self.
            unsafe { &*self.atoms.add(off / 8) }
        }

        /// Zeroes `n` bytes (whole words) at `off`: the cells and the atoms.
        ///
        /// # Safety
        /// As for the std region's `zero` (loom checks it).
        pub unsafe fn zero(&self, off: usize, n: usize) {
            assert!(off.is_multiple_of(8) && n.is_multiple_of(8) && off + n <= self.len);
            for w in (off..off + n).step_by(8) {
                // SAFETY: the caller's contract; loom checks it.
                unsafe { self.write_u64(w, 0) };
                self.atomic_u64(w).store(0, super::Ordering::Relaxed);
            }
        }

        /// Reads the word at `off`.
        ///
        /// # Safety
        /// As for the std region's `read_u64` (loom checks it).
        pub unsafe fn read_u64(&self, off: usize) -> u64 {
            // SAFETY: loom checks that no write races with this read.
            self.cell(off / 8).with(|p| unsafe { *p })
        }

        /// Writes the word at `off`.
        ///
        /// # Safety
        /// As for the std region's `write_u64` (loom checks it).
        pub unsafe fn write_u64(&self, off: usize, v: u64) {
            // SAFETY: loom checks that no access races with this write.
            self.cell(off / 8).with_mut(|p| unsafe { *p = v })
        }

        /// Copies `src` to `off` (which is 8-aligned), word by word.
        ///
        /// # Safety
        /// As for the std region's `write` (loom checks it).
        pub unsafe fn write(&self, off: usize, src: &[u8]) {
            assert!(off.is_multiple_of(8) && off + src.len() <= self.len);
            for (i, chunk) in src.chunks(8).enumerate() {
                let w = off + i * 8;
                let mut bytes = if chunk.len() < 8 {
                    // SAFETY: the caller's contract; loom checks it.
                    unsafe { self.read_u64(w) }.to_ne_bytes()
                } else {
                    [0; 8]
                };
                bytes[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: the caller's contract; loom checks it.
                unsafe { self.write_u64(w, u64::from_ne_bytes(bytes)) };
            }
        }

        /// Copies from `off` (8-aligned) into `dst`, word by word.
        ///
        /// # Safety
        /// As for the std region's `read` (loom checks it).
        pub unsafe fn read(&self, off: usize, dst: &mut [u8]) {
            assert!(off.is_multiple_of(8) && off + dst.len() <= self.len);
            for (i, chunk) in dst.chunks_mut(8).enumerate() {
                // SAFETY: the caller's contract; loom checks it.
                let bytes = unsafe { self.read_u64(off + i * 8) }.to_ne_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }

        /// Appends the `len` bytes at `off` (8-aligned) to `out`, read word
        /// by word with Relaxed loads of the atoms, as the std region's
        /// `copy_out` does: a copy that races a write of the same words
        /// (an overwriting publisher's next lap) is no data race, it only
        /// reads other bytes. It reads the atoms, not the cells: use it on
        /// what [`Region::copy_in`] wrote.
        pub fn copy_out(&self, off: usize, len: usize, out: &mut Vec<u8>) {
            assert!(off.is_multiple_of(8) && off + len <= self.len);
            for w in (off..off + len).step_by(8) {
                // Relaxed: as in the std region, the record was published
                // by the Acquire load that found it (and an overwriting
                // reader checks its copy afterwards); this only copies.
                let bytes = self.atomic_u64(w).load(super::Ordering::Relaxed);
                let n = (off + len - w).min(8);
                out.extend_from_slice(&bytes.to_ne_bytes()[..n]);
            }
        }

        /// Copies `src` to `off` (8-aligned) word by word with Relaxed
        /// stores to the atoms, the last word padded with zeros, as the
        /// std region's `copy_in` does (the cells are left alone: read the
        /// copy with [`Region::copy_out`]).
        ///
        /// # Safety
        /// As for the std region's `copy_in`: the range is the caller's
        /// (reserved space not yet committed).
        pub unsafe fn copy_in(&self, off: usize, src: &[u8]) {
            assert!(off.is_multiple_of(8) && off + src.len() <= self.len);
            for (i, chunk) in src.chunks(8).enumerate() {
                let mut bytes = [0u8; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                // Relaxed: the commit that follows (a Release store of the
                // header) publishes the record; this only stores its words.
                self.atomic_u64(off + i * 8)
                    .store(u64::from_ne_bytes(bytes), super::Ordering::Relaxed);
            }
        }
    }
}

pub use region::Region;

#[cfg(any(shmchan_loom, feature = "internals"))]
impl<'a> Region<'a> {
    /// The 8-byte word at `off` (a multiple of 8) as an atomic, for models
    /// and fuzz targets (the MPSC record headers).
    ///
    /// # Safety
    /// Loads are always fine. A store must keep the ring's invariants for
    /// every endpoint that may run meanwhile: a forged header lets a
    /// consumer read a payload its producer is still writing.
    pub unsafe fn shared_word(&self, off: usize) -> &'a AtomicU64 {
        self.atomic_u64(off)
    }
}

#[cfg(all(test, not(shmchan_loom)))]
mod tests {
    use super::Region;

    /// The word copies at every length around a word: what `copy_in`
    /// stores (the payload, then zeros to the word's end) is what
    /// `copy_out` returns, and `zero` clears whole words and nothing past
    /// them.
    #[test]
    fn word_copies_round_trip_at_every_length() {
        let mut mem = vec![0u64; 8];
        // SAFETY: `mem` is 64 bytes, 8-aligned, used only through `region`
        // below while it lives.
        let region = unsafe { Region::from_raw(mem.as_mut_ptr().cast(), 64) };
        for len in 0..=24 {
            let src: Vec<u8> = (0..len as u8).map(|b| b + 1).collect();
            // SAFETY: one thread; no reference views the region.
            unsafe { region.zero(0, 64) };
            // SAFETY: as above.
            unsafe { region.copy_in(8, &src) };
            let mut out = vec![9u8];
            region.copy_out(8, len, &mut out);
            assert_eq!(out[0], 9, "len {len}: a byte before the copy");
            assert_eq!(&out[1..], &src[..], "len {len}");
            let mut padded = Vec::new();
            region.copy_out(8, len.div_ceil(8) * 8, &mut padded);
            assert!(padded[len..].iter().all(|&b| b == 0), "len {len}: padding");
            let mut rest = Vec::new();
            region.copy_out(8 + len.div_ceil(8) * 8, 8, &mut rest);
            assert_eq!(rest, [0; 8], "len {len}: a word past the copy");
        }
        // SAFETY: as above.
        unsafe { region.copy_in(0, &[7; 64]) };
        // SAFETY: as above.
        unsafe { region.zero(8, 16) };
        let mut all = Vec::new();
        region.copy_out(0, 64, &mut all);
        let want: Vec<u8> = (0..64)
            .map(|i| if (8..24).contains(&i) { 0 } else { 7 })
            .collect();
        assert_eq!(all, want);
    }

    /// The same at the lengths where bulk zeroing (`rep stosq`) takes
    /// over, and past them.
    #[test]
    fn bulk_copies_round_trip() {
        let mut mem = vec![0u64; 512];
        // SAFETY: `mem` is 4096 bytes, 8-aligned, used only through
        // `region` below while it lives.
        let region = unsafe { Region::from_raw(mem.as_mut_ptr().cast(), 4096) };
        for len in (240..=280).chain([1000, 1031, 2048, 4000]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8 | 1).collect();
            // SAFETY: one thread; no reference views the region.
            unsafe { region.copy_in(0, &src[..len.min(4088)]) };
            let mut out = vec![3u8; 2];
            region.copy_out(0, len, &mut out);
            assert_eq!(&out[..2], &[3, 3], "len {len}");
            assert_eq!(&out[2..], &src[..], "len {len}");
            let end = len.div_ceil(8) * 8;
            let mut padded = Vec::new();
            region.copy_out(0, end, &mut padded);
            assert!(padded[len..].iter().all(|&b| b == 0), "len {len}: padding");
            // SAFETY: as above.
            unsafe { region.zero(8, end - 16) };
            let mut after = Vec::new();
            region.copy_out(0, end, &mut after);
            let zeroed = end - 16;
            assert_eq!(&after[..8], &src[..8], "len {len}: before the zeroing");
            assert!(after[8..8 + zeroed].iter().all(|&b| b == 0), "len {len}");
            assert_eq!(
                &after[8 + zeroed..len],
                &src[8 + zeroed..],
                "len {len}: after"
            );
        }
    }
}
