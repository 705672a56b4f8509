#include "common/error.h"

namespace qb {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

}  // namespace qb
