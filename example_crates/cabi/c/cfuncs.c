/* C functions for pytest-uprobe's C-function tests: each prints what it got and returns. */
#include <stdio.h>

struct pair { int a; int b; };
struct trio { unsigned int x, y, z; };
struct big { long a, b, c; };
struct mixed { double d; int i; };

__attribute__((noinline)) int c_add(int a, int b) {
    int sum = a + b;
    printf("C c_add %d %d -> %d\n", a, b, sum);
    return sum;
}

__attribute__((noinline)) long c_many(long a, long b, long c, long d, long e, long f, long g, long h) {
    long sum = a + b + c + d + e + f + g + h;
    printf("C c_many %ld %ld %ld %ld %ld %ld %ld %ld -> %ld\n", a, b, c, d, e, f, g, h, sum);
    return sum;
}

__attribute__((noinline)) struct pair c_pair(int a, int b) {
    struct pair p = { a * 2, b * 3 };
    printf("C c_pair %d %d -> %d %d\n", a, b, p.a, p.b);
    return p;
}

__attribute__((noinline)) struct trio c_trio(unsigned int x) {
    struct trio t = { x, x + 1, x + 2 };
    printf("C c_trio %u -> %u %u %u\n", x, t.x, t.y, t.z);
    return t;
}

__attribute__((noinline)) struct big c_big(struct pair p) {
    struct big b = { p.a, p.b, (long)p.a * p.b };
    printf("C c_big %d %d -> %ld %ld %ld\n", p.a, p.b, b.a, b.b, b.c);
    return b;
}

__attribute__((noinline)) struct mixed c_mixed(int i) {
    struct mixed m = { i / 2.0, i };
    printf("C c_mixed %d -> %g %d\n", i, m.d, m.i);
    return m;
}
