#pragma once
// What this process uses and what the machine can still give it: the figures a memory plan is
// checked against before a large model is loaded, and that benchmarks report.
#include <cstddef>
#include <string>

namespace qb {

// Bytes this process may still allocate: the kernel's MemAvailable, lowered to the cgroup's
// remaining limit (v2 memory.max - memory.current, or v1 limit - usage) when one is set.
size_t available_memory_bytes();
// Peak and current resident set of this process (VmHWM, VmRSS), file-backed mapped pages included.
size_t peak_rss_bytes();
size_t current_rss_bytes();

// Gives back the pages of a read-only file mapping range (madvise DONTNEED on whole pages inside
// it): after a block of a model has been used, its weights stop counting towards the resident set.
void release_mapped_range(const void* data, size_t bytes);

// "12.3 GB" (decimal, one decimal place), as memory plans print sizes.
std::string format_gb(double bytes);

}  // namespace qb
