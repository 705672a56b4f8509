#pragma once
// Provenance for reports: the tool's version and revision, and the host that ran it.
#include <nlohmann/json.hpp>

namespace qb {

// {"cpu": "...", "threads": N, "hostname": "..."}
nlohmann::json host_info();
// {"name": "quantbench", "version": "...", "git_revision": "..."}
nlohmann::json tool_info();
// ISO-8601 UTC timestamp of now.
std::string utc_timestamp();

}  // namespace qb
