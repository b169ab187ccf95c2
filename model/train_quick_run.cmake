# Runs model/train.py on a tiny data set for one epoch, then loads what it
# wrote with the C++ model (rnn-eval), so a change to either side that breaks
# the other fails the test suite. Invoked by ctest with -DPYTHON, -DTRAIN,
# -DEVAL and -DOUT.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
execute_process(
  COMMAND ${PYTHON} ${TRAIN} --out-dir ${OUT} --train-samples 256 --epochs 1
          --eval-samples 32
  RESULT_VARIABLE train_result)
if(NOT train_result EQUAL 0)
  message(FATAL_ERROR "train.py failed: ${train_result}")
endif()
execute_process(
  COMMAND ${EVAL} --model=${OUT}/rnn.safetensors
          --eval_set=${OUT}/eval_set.safetensors
  RESULT_VARIABLE eval_result)
if(NOT eval_result EQUAL 0)
  message(FATAL_ERROR "rnn-eval could not use train.py's output: ${eval_result}")
endif()
