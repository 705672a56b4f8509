# The main job on the embedded default alone, as on a fresh clone: QUANTBENCH_DATA names
# datasets/embedded (so ../shared/data, if any, is not read), HOME and the working directory are an
# empty folder. It must name the embedded default, say its settings are reduced, and write a run
# document that `quantbench report` validates against the schema.
#   cmake -DPROG=quantbench -DEMBEDDED=<source>/datasets/embedded -DWORK=<empty dir> -P main_job_embedded.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ENV{QUANTBENCH_DATA} ${EMBEDDED})
set(ENV{HOME} ${WORK})
# Fewer windows and calibration samples than the job's quick defaults keep the test short.
execute_process(COMMAND ${PROG} eval --max-windows 8 --calib-samples 4 WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("exit code ${code}\nstdout:\n${out}\nstderr:\n${err}")
if(NOT code EQUAL 0)
  message(FATAL_ERROR "main job failed with exit code ${code}")
endif()
foreach(expected "data folder [^\n]*datasets/embedded \\(embedded default\\): model [^\n]*stories-d256-l2"
                 "reduced settings: first 8 windows, AWQ calibrated on 4 samples x 512 tokens"
                 "awq w4 g128 +PPL = [0-9.]+ \\+/- [0-9.]+")
  if(NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "output does not match '${expected}'")
  endif()
endforeach()
file(READ ${WORK}/quantbench-eval.json doc)
if(NOT doc MATCHES "\"data_folder_source\": \"embedded default\"")
  message(FATAL_ERROR "the run document does not record the embedded default in job.data_folder_source")
endif()
execute_process(COMMAND ${PROG} report ${WORK}/quantbench-eval.json --markdown ${WORK}/report.md
                RESULT_VARIABLE code ERROR_VARIABLE err)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "quantbench report refused the run document (exit ${code}): ${err}")
endif()
