#include "common/host_info.h"

#include <unistd.h>

#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include "common/version.h"

namespace qb {

nlohmann::json host_info() {
  std::string cpu = "unknown";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return {{"cpu", cpu}, {"threads", std::thread::hardware_concurrency()}, {"hostname", host}};
}

nlohmann::json tool_info() {
  return {{"name", "quantbench"}, {"version", QB_VERSION}, {"git_revision", QB_GIT_REVISION}};
}

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace qb
