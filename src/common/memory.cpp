#include "common/memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

namespace qb {
namespace {

// "Key:   123 kB" from a /proc file, in bytes; 0 when absent.
size_t proc_kb_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      size_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  return 0;
}

// The first number in a file ("max" and absent files: none).
bool read_number(const char* path, size_t* out) {
  std::ifstream in(path);
  unsigned long long v = 0;
  if (!(in >> v)) return false;
  *out = static_cast<size_t>(v);
  return true;
}

}  // namespace

size_t available_memory_bytes() {
  size_t avail = proc_kb_field("/proc/meminfo", "MemAvailable");
  size_t limit = 0, usage = 0;
  if (read_number("/sys/fs/cgroup/memory.max", &limit) && read_number("/sys/fs/cgroup/memory.current", &usage)) {
    avail = std::min(avail, limit > usage ? limit - usage : 0);
  } else if (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) &&
             read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", &usage) &&
             limit < (size_t{1} << 60)) {  // v1 reports "no limit" as a huge number
    avail = std::min(avail, limit > usage ? limit - usage : 0);
  }
  return avail;
}

size_t peak_rss_bytes() { return proc_kb_field("/proc/self/status", "VmHWM"); }
size_t current_rss_bytes() { return proc_kb_field("/proc/self/status", "VmRSS"); }

void release_mapped_range(const void* data, size_t bytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::string format_gb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GB", bytes / 1e9);
  return buf;
}

}  // namespace qb
