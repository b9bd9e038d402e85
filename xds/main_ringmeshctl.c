/*
 * main_ringmeshctl.c - ringmeshctl, the mesh's command line (being written: the CA
 * commands come first).
 */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ringmeshctl: no commands yet\n");
    return 2;
}
