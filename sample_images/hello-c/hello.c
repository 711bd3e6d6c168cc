/* The C application of samples/debian-abi and samples/debian-v3, built by
 * sample_images/debian.sh against Debian bookworm's glibc: for x86-64-v3 (hello-v3, marked
 * as needing it) and for arm64 linked for 4 KiB pages only (hello-4k). It prints the page
 * size it runs with and a dot product that GCC vectorises (AVX2 and FMA under
 * -march=x86-64-v3). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define N 256

static double dot(const double *a, const double *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

int main(int argc, char **argv) {
  static double a[N], b[N];
  const char *name = strrchr(argv[0], '/');
  for (int i = 0; i < N; i++) {
    a[i] = i * 0.5;
    b[i] = argc + i;
  }
  printf("hello, world: C, %s, page size %ld, dot %g\n", name ? name + 1 : argv[0], sysconf(_SC_PAGESIZE),
         dot(a, b, N));
  return 0;
}
