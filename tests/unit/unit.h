/* tests/unit/unit.h: what the unit test files share: CHECK, which marks the
   running test failed, and the tests each file adds to unit.c's list. */
#ifndef MYSMTP_UNIT_H
#define MYSMTP_UNIT_H

#include <stdio.h>

extern int test_failed;

#define CHECK(cond) do { if (!(cond)) { \
	printf("    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
	test_failed = 1; } } while (0)

/* tests/unit/engine.c */
void test_engine_tagged_dialect(void);
void test_engine_idle(void);
void test_engine_held_input(void);
void test_engine_literal_sink(void);

#endif
