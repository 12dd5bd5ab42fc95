//! Start-up code given back once the runtime is up.
//!
//! Starting a sidecar runs code it never runs again: flag parsing, YAML,
//! building components, creating SQLite schemas. The kernel maps the
//! binary's pages as they are first touched, 64 KiB around each one, and
//! keeps them in the process's resident set after start-up has finished;
//! they were most of its idle memory (docs/benchmarks.md). Once every
//! service has started, the runtime drops its page-table entries for the
//! binary's read-only pages (its code, constants and unwind tables). The
//! pages stay in the page cache, shared with other processes, and the
//! kernel maps back, with a minor fault, whatever the runtime runs
//! afterwards: the resident set holds the code the runtime is using, not
//! the code it once used.
//!
//! Only pages that the process cannot have written are given back: the
//! file-backed part of loaded segments without write permission, outside
//! the part that the loader relocates and then seals (`PT_GNU_RELRO`), in a
//! binary without text relocations; and of those, only the ones that
//! `/proc/self/smaps` shows still mapped from the file with no private copy
//! (a debugger's breakpoint or a uprobe writes one into the code; such a
//! mapping is left alone). Giving back such a page cannot change what it
//! holds.
//!
//! The only module of the workspace that allows `unsafe` code: `madvise`
//! is unsafe wherever it is wrapped (it can discard memory), and the
//! program headers come from `dl_iterate_phdr`.

#![allow(unsafe_code)]

/// Drops the binary's read-only pages from this process's resident set
/// (they are mapped back as they are used); returns how many bytes of
/// address space were given back.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn release_startup_pages() -> usize {
    image::release()
}

/// Elsewhere the binary's pages stay as they are.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn release_startup_pages() -> usize {
    0
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod image {
    use std::ffi::c_int;
    use std::ops::Range;

    /// The file-backed parts of the running binary's read-only segments,
    /// as address ranges; empty when the image has text relocations (its
    /// code may have been written at load time).
    pub(super) fn read_only_ranges() -> Vec<Range<usize>> {
        struct Found {
            ranges: Vec<Range<usize>>,
        }

        unsafe extern "C" fn first_object(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> c_int {
            // SAFETY: dl_iterate_phdr passes a valid `info` for the
            // duration of the call, and `data` is the `Found` given below.
            let (info, found) = unsafe { (&*info, &mut *data.cast::<Found>()) };
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
            let headers =
                unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
            let base = info.dlpi_addr as usize;
            let mut relro = 0..0;
            let mut text_relocations = false;
            for header in headers {
                match header.p_type {
                    libc::PT_GNU_RELRO => {
                        let start = base + header.p_vaddr as usize;
                        relro = start..start + header.p_memsz as usize;
                    }
                    // SAFETY: the dynamic section is mapped at this
                    // address, and ends with a DT_NULL entry.
                    libc::PT_DYNAMIC => {
                        text_relocations = unsafe {
                            has_text_relocations((base + header.p_vaddr as usize) as *const Dynamic)
                        }
                    }
                    _ => {}
                }
            }
            if text_relocations {
                return 1;
            }
            for header in headers {
                if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                    continue;
                }
                // The file's bytes only: past them the loader may have
                // written zeros into a page of its own.
                let start = base + header.p_vaddr as usize;
                let segment = start..start + header.p_filesz as usize;
                if segment.start < relro.end && relro.start < segment.end {
                    continue;
                }
                found.ranges.push(segment);
            }
            // The first object is the executable itself: stop there.
            1
        }

        let mut found = Found { ranges: Vec::new() };
        // SAFETY: the callback only reads the headers it is given and
        // writes through `data`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(first_object), (&raw mut found).cast::<libc::c_void>());
        }
        found.ranges
    }

    /// An entry of the dynamic section (`Elf64_Dyn`).
    #[repr(C)]
    struct Dynamic {
        tag: i64,
        value: u64,
    }

    /// Whether a dynamic section asks for text relocations.
    ///
    /// # Safety
    /// `dynamic` must point at a mapped dynamic section ending with
    /// `DT_NULL`.
    unsafe fn has_text_relocations(mut dynamic: *const Dynamic) -> bool {
        const DT_TEXTREL: i64 = 22;
        const DT_FLAGS: i64 = 30;
        const DF_TEXTREL: u64 = 4;
        loop {
            // SAFETY: the caller's promise; the loop stops at DT_NULL.
            let entry = unsafe { &*dynamic };
            match entry.tag {
                0 => return false,
                DT_TEXTREL => return true,
                DT_FLAGS if entry.value & DF_TEXTREL != 0 => return true,
                _ => {}
            }
            // SAFETY: not past DT_NULL yet.
            dynamic = unsafe { dynamic.add(1) };
        }
    }

    /// One mapping of `/proc/self/smaps`, with the fields used here.
    pub(super) struct Mapping {
        pub(super) range: Range<usize>,
        read_only: bool,
        file_backed: bool,
        pub(super) rss_kb: u64,
        anonymous_kb: u64,
    }

    /// The mappings listed in `smaps` (the text of `/proc/self/smaps`).
    pub(super) fn mappings(smaps: &str) -> Vec<Mapping> {
        let kb = |rest: &str| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0)
        };
        let mut found: Vec<Mapping> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                let perms = fields.next().unwrap_or("");
                let path = fields.nth(3).unwrap_or("");
                found.push(Mapping {
                    range: start..end,
                    read_only: perms.as_bytes().get(1) == Some(&b'-'),
                    file_backed: path.starts_with('/'),
                    rss_kb: 0,
                    anonymous_kb: 0,
                });
            } else if let Some(mapping) = found.last_mut() {
                if let Some(rest) = line.strip_prefix("Rss:") {
                    mapping.rss_kb = kb(rest);
                } else if let Some(rest) = line.strip_prefix("Anonymous:") {
                    mapping.anonymous_kb = kb(rest);
                }
            }
        }
        found
    }

    /// The mappings of `smaps` that are read from a file, not writable, and
    /// hold no private copy of a page.
    pub(super) fn unwritten_file_mappings(smaps: &str) -> Vec<Range<usize>> {
        mappings(smaps)
            .into_iter()
            .filter(|m| m.read_only && m.file_backed && m.anonymous_kb == 0)
            .map(|m| m.range)
            .collect()
    }

    /// The whole pages inside `range`.
    pub(super) fn whole_pages(range: &Range<usize>, page: usize) -> Range<usize> {
        let start = range.start.div_ceil(page) * page;
        let end = range.end / page * page;
        start..end.max(start)
    }

    pub(super) fn release() -> usize {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as usize,
            _ => return 0,
        };
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return 0;
        };
        let unwritten = unwritten_file_mappings(&smaps);
        let mut released = 0;
        for range in read_only_ranges() {
            let pages = whole_pages(&range, page);
            for mapping in &unwritten {
                let part = pages.start.max(mapping.start)..pages.end.min(mapping.end);
                if part.is_empty() {
                    continue;
                }
                // SAFETY: whole pages of a read-only segment of this
                // binary, in a mapping still read from its file with no
                // private copy of any page (see the module's comment), so
                // dropping them changes no byte that the process can read.
                let done = unsafe {
                    libc::madvise(
                        part.start as *mut libc::c_void,
                        part.len(),
                        libc::MADV_DONTNEED,
                    )
                };
                if done == 0 {
                    released += part.len();
                }
            }
        }
        released
    }
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::image::*;
    use super::release_startup_pages;

    const SMAPS: &str = "\
55e8b8fd8000-55e8ba8a3000 r-xp 008d1000 fd:01 123 /usr/bin/mecha
Rss:                4660 kB
Anonymous:             0 kB
55e8ba8a3000-55e8ba9bd000 r--p 021a3000 fd:01 123 /usr/bin/mecha
Anonymous:          1128 kB
7f627e800000-7f627f000000 rw-p 00000000 00:00 0 
Anonymous:          1640 kB
7f627f175000-7f627f2cb000 r-xp 00028000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             4 kB
7f627f2cb000-7f627f31e000 r--p 0017e000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7ffc01579000-7ffc0159a000 rw-p 00000000 00:00 0 [stack]
Anonymous:           132 kB
";

    #[test]
    fn only_unwritten_read_only_file_mappings_qualify() {
        // The relocated (written) read-only mapping, the heap, the stack
        // and a code mapping with a private copy (a breakpoint) are out.
        assert_eq!(
            unwritten_file_mappings(SMAPS),
            vec![
                0x55e8b8fd8000..0x55e8ba8a3000,
                0x7f627f2cb000..0x7f627f31e000
            ]
        );
    }

    #[test]
    fn whole_pages_stay_inside_the_range() {
        assert_eq!(whole_pages(&(4096..12288), 4096), 4096..12288);
        assert_eq!(whole_pages(&(4097..12287), 4096), 8192..8192);
        assert_eq!(whole_pages(&(100..200), 4096), 4096..4096);
    }

    /// The resident size, in kB, of the mapping that holds `address`.
    fn resident_kb(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        mappings(&smaps)
            .into_iter()
            .find(|m| m.range.contains(&address))
            .unwrap_or_else(|| panic!("no mapping holds {address:#x}"))
            .rss_kb
    }

    #[test]
    fn the_ranges_are_this_binarys_unwritten_code() {
        let here = read_only_ranges as fn() -> Vec<std::ops::Range<usize>> as usize;
        let ranges = read_only_ranges();
        assert!(
            ranges.iter().any(|range| range.contains(&here)),
            "no read-only range holds this function's code: {ranges:x?}"
        );
        // Every range lies in mappings of the file, none writable.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let file_mappings = unwritten_file_mappings(&smaps);
        for range in &ranges {
            assert!(
                file_mappings
                    .iter()
                    .any(|m| m.start < range.end && range.start < m.end),
                "{range:x?} is in no unwritten file mapping: {file_mappings:x?}"
            );
        }
    }

    #[test]
    fn code_is_given_back() {
        let here = read_only_ranges as fn() -> Vec<std::ops::Range<usize>> as usize;
        let before = resident_kb(here);
        assert!(release_startup_pages() > 0);
        let after = resident_kb(here);
        assert!(
            after < before,
            "the code's mapping kept {after} kB of {before} kB"
        );
    }
}
