/* options_tool.c — `labyrinth-options`: prints the option list of options.h, as a Markdown table
 * (--markdown, for the README) or as plain lines. Built from the same X-macro list as the
 * environment parser, so the README's table cannot drift from the code. */
#include <stdio.h>
#include <string.h>

#include "options.h"

static const char *kind_name(enum lab_option_kind k)
{
    return k == LAB_OPT_BOOL ? "0/1" : k == LAB_OPT_UINT ? "number" : "0/1/json";
}

int main(int argc, char **argv)
{
    int md = argc > 1 && !strcmp(argv[1], "--markdown");
    if (md) {
        printf("| variable | values | default | meaning |\n|---|---|---|---|\n");
    }
#define X(name, kind, def, doc)                                                                \
    if (md)                                                                                    \
        printf("| `LABYRINTH_%s` | %s | %d | %s |\n", #name, kind_name(LAB_OPT_##kind), def, doc); \
    else                                                                                       \
        printf("LABYRINTH_%s=%d  (%s) %s\n", #name, def, kind_name(LAB_OPT_##kind), doc);
    LAB_OPTIONS(X)
#undef X
    return 0;
}
