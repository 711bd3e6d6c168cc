/* An arm64 program built by sample_images/debian.sh with -march=armv8.1-a: its atomic
 * add is one LSE instruction (ldaddal), which ARMv8.0 CPUs such as the Raspberry Pi 4's
 * Cortex-A72 lack. QEMU's default arm64 CPU runs it; `--qemu-cpu linux/arm64=cortex-a72`
 * makes it die of SIGILL here, as it would on the board. */
#include <stdatomic.h>
#include <stdio.h>

static atomic_long counter;

int main(void) {
  for (int i = 0; i < 1000; i++) atomic_fetch_add(&counter, 1);
  printf("counted %ld with LSE atomics\n", (long)atomic_load(&counter));
  return 0;
}
