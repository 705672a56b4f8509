# Runs a command and checks its exit code and output, for CLI tests:
#   cmake -DPROG=prog -DARGS="arg1|arg2" -DEXPECT_CODE=1 [-DEXPECT_REGEX=regex] [-DEXPECT_LINES=1] -P run_expect.cmake
# EXPECT_LINES: how many lines stderr must have (one-line errors).
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${PROG} ${args} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("exit code ${code}\nstdout:\n${out}\nstderr:\n${err}")
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "expected exit code ${EXPECT_CODE}, got ${code}")
endif()
if(DEFINED EXPECT_REGEX AND NOT "${out}${err}" MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "output does not match '${EXPECT_REGEX}'")
endif()
if(DEFINED EXPECT_LINES)
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines n)
  if(NOT n EQUAL EXPECT_LINES)
    message(FATAL_ERROR "expected ${EXPECT_LINES} line(s) on stderr, got ${n}")
  endif()
endif()
