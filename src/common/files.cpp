#include "common/files.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/interrupt.h"

namespace qb {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(path, std::string("mmap failed: ") + std::strerror(errno));
    }
    f->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed JSON: ") + e.what());
  }
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string sha256_hex(const void* data, size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string sha256_file(const std::string& path) {
  auto f = MappedFile::open(path);
  return sha256_hex(f->data(), f->size());
}

namespace {

namespace fs = std::filesystem;

// `path` without trailing slashes, so that "out/" and "out" name the same temporary.
std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// The host keeps apart the processes of a Slurm array that write beside each other on a shared
// filesystem, where pids repeat across nodes.
std::string temp_prefix(const std::string& name) {
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  return name + ".tmp." + host + ".";
}

std::string temp_path_for(const std::string& path) { return temp_prefix(path) + std::to_string(getpid()); }

// Removes the temporary files and directories of `path` that runs on this host left behind when
// they were killed: those whose process no longer exists.
void remove_stale_temps(const std::string& path) {
  const fs::path target(path);
  const std::string prefix = temp_prefix(target.filename().string());
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to probe)
    std::error_code ignored;
    fs::remove_all(it->path(), ignored);
  }
}

// Makes a rename in `dir` durable. Best effort: some filesystems (NFS among them) refuse fsync on a
// directory, and the new file is complete and in place either way.
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string parent_directory(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// Writes all of `content` to `fd`; 0 or the errno of the failing write(2).
int write_all(int fd, const std::string& content) {
  // Chunks bound the time between interrupt checks (a 13 GB checkpoint takes many seconds).
  constexpr size_t kChunk = size_t(64) << 20;
  for (size_t done = 0; done < content.size();) {
    if (interrupt_signal()) return EINTR;
    const ssize_t n = ::write(fd, content.data() + done, std::min(kChunk, content.size() - done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  remove_stale_temps(path);
  const std::string tmp = temp_path_for(path);
  const TempFileGuard guard(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(path, std::string("cannot write: ") + std::strerror(errno));
  int error = write_all(fd, content);
  if (!error && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (!error && ::rename(tmp.c_str(), path.c_str()) != 0) error = errno;
  if (error) {
    ::unlink(tmp.c_str());
    throw_if_interrupted();
    fail(path, std::string("write failed: ") + std::strerror(error));
  }
  sync_directory(parent_directory(path));
}

AtomicDirectory::AtomicDirectory(const std::string& path) : path_(without_trailing_slash(path)) {
  if (fs::exists(path_)) fail(path_, "already exists");
  remove_stale_temps(path_);
  temp_ = temp_path_for(path_);
  std::error_code ec;
  fs::remove_all(temp_, ec);  // this process's own, from an earlier attempt
  if (!fs::create_directories(temp_, ec) || ec) fail(temp_, "cannot create directory: " + ec.message());
}

AtomicDirectory::~AtomicDirectory() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(temp_, ignored);
}

void AtomicDirectory::commit() {
  throw_if_interrupted();
  sync_directory(temp_);
  // Never replaces a directory that appeared meanwhile (rename(2) would replace an empty one).
  // Filesystems without RENAME_NOREPLACE (EINVAL) get the plain rename after an existence check.
  int rc = ::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && errno == EINVAL) {
    if (fs::exists(path_)) fail(path_, "already exists");
    rc = ::rename(temp_.c_str(), path_.c_str());
  }
  if (rc != 0) fail(path_, "cannot rename " + temp_ + " into place: " + std::strerror(errno));
  committed_ = true;
  sync_directory(parent_directory(path_));
}

}  // namespace qb
