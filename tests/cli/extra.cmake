# Command-line tests: documented exit statuses (0 ok, 1 rejected, 2 usage) and messages.
set(OT_EXPECT ${CMAKE_CURRENT_LIST_DIR}/expect.sh)
set(OT_DATA ${CMAKE_CURRENT_LIST_DIR}/data)
set(OT_KDIR ${CMAKE_SOURCE_DIR}/examples/kernels)
function(ot_cli_test name status pattern)
  add_test(NAME cli.${name} COMMAND sh ${OT_EXPECT} ${status} "${pattern}" $<TARGET_FILE:opentrn_cli> ${ARGN})
endfunction()
ot_cli_test(no_args 2 "usage: opentrn")
ot_cli_test(unknown_command 2 "unknown command 'frob'" frob)
ot_cli_test(help 0 "exit status: 0 success, 1 input rejected, 2 usage error" --help)
foreach(cmd chip asm disasm verify isa demo compile fit)
  ot_cli_test(${cmd}_help 0 "usage: opentrn ${cmd}" ${cmd} --help)
endforeach()
ot_cli_test(asm_no_input 2 "no input file" asm)
ot_cli_test(asm_bad_option 2 "unknown or incomplete option '--frob'" asm ${OT_KDIR}/gelu.s --frob)
ot_cli_test(asm_missing_file 1 "cannot open" asm ${CMAKE_BINARY_DIR}/no-such-file.s -o ${CMAKE_BINARY_DIR}/x.prog)
ot_cli_test(asm_syntax_error 1 "syntax_error.s:3:5: unknown instruction 'frobnicate'" asm ${OT_DATA}/syntax_error.s -o ${CMAKE_BINARY_DIR}/x.prog)
ot_cli_test(asm_illegal 1 "\\[MATMUL_TILE\\]" asm ${OT_DATA}/illegal.s -o ${CMAKE_BINARY_DIR}/x.prog)
ot_cli_test(verify_illegal 1 "3 violation\\(s\\) on trn2" verify ${OT_DATA}/illegal.s)
ot_cli_test(verify_engine_mem 1 "gpsimd\\[0\\].*\\[ENGINE_MEM\\] dst: gpsimd cannot write ps" verify ${OT_DATA}/illegal.s --chip trn2)
ot_cli_test(verify_ok 0 "verified for trn1" verify ${OT_KDIR}/layernorm.s --chip trn1)
ot_cli_test(verify_no_chip 2 "no chip" verify ${OT_DATA}/nochip.s)
ot_cli_test(verify_bad_chip 1 "" verify ${OT_KDIR}/gelu.s --chip no-such-chip)
ot_cli_test(disasm_garbage 1 "header|bytes" disasm ${OT_DATA}/garbage.bin)
ot_cli_test(isa 0 "# OpenTRN instruction set" isa)
ot_cli_test(demo 0 "held-out loss" demo --steps 2 --sample 4)
# fit: GPT-2 124M has 124,439,808 fp32 weights = 0.464 GiB, and as much again in gradients
ot_cli_test(fit_gpt2 0 "gradients \\(fp32\\) +0.464 GiB" fit --model gpt2 --batch 2)
ot_cli_test(fit_too_big 1 "DOES NOT FIT" fit --model gpt2-medium --batch 64 --chip trn1)
ot_cli_test(fit_bad_task 2 "--task is train or infer" fit --model gpt2 --task fly)
# one core's program has 1/8 of trn2's HBM; the data-parallel one all of it, a gradient copy per core
ot_cli_test(fit_one_core 1 "its share of HBM: 12.00 GiB" fit --model gpt2 --batch 8)
ot_cli_test(fit_cores_all 0 "gradients \\(fp32\\) +3.709 GiB  \\(a copy per core\\)" fit --model gpt2 --batch 8 --cores all)
ot_cli_test(fit_cores_too_many 1 "--cores 9, but trn2 has 8 NeuronCores" fit --model gpt2 --cores 9)
# --check-numerics: the training step's graph on the device against the fp32 host reference
ot_cli_test(train_check_numerics 0 "nodes: [0-9]+ = [0-9]+ compared \\+ [0-9]+ fused away \\+ 0 integer-only; 0 out of tolerance" train --model gpt2-tiny
            --data ${CMAKE_SOURCE_DIR}/README.md --batch 2 --seq 16 --check-numerics)
ot_cli_test(train_check_then_train 0 "step 2/2" train --model gpt2-tiny --data ${CMAKE_SOURCE_DIR}/README.md
            --batch 2 --seq 16 --steps 2 --check-numerics)
ot_cli_test(fit_check_numerics 0 "numerics: ok" fit --model llama-tiny --batch 2 --seq 16 --check-numerics --fp32)
ot_cli_test(train_check_numerics_resume 1 "not a resumed checkpoint" train --model gpt2-tiny
            --data ${CMAKE_SOURCE_DIR}/README.md --resume ${CMAKE_BINARY_DIR}/no-such-dir --check-numerics)
# compile a built-in model's training step; an unknown model or file is rejected
ot_cli_test(compile_model 0 "nodes lowered" compile gpt2-tiny --seq 32 -o ${CMAKE_BINARY_DIR}/tiny_step.prog)
ot_cli_test(compile_missing 1 "cannot open" compile ${CMAKE_BINARY_DIR}/no-such-graph.json)
# asm -> disasm -> asm -> disasm gives the same listing, through the command line.
add_test(NAME cli.roundtrip COMMAND sh -c
  "set -e; o=$1; d=$2; for k in $d/*.s; do n=$(basename $k .s); $o asm $k -o $3/$n.1.prog >/dev/null; \
   $o disasm $3/$n.1.prog -o $3/$n.1.s; $o asm $3/$n.1.s -o $3/$n.2.prog >/dev/null; $o disasm $3/$n.2.prog -o $3/$n.2.s; \
   cmp $3/$n.1.s $3/$n.2.s; done" roundtrip $<TARGET_FILE:opentrn_cli> ${OT_KDIR} ${CMAKE_BINARY_DIR})
