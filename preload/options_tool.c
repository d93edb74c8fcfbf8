/* options_tool.c — `labyrinth-options`: prints the option list of options.h, as a Markdown table
 * (--markdown, for the README) or as plain lines. Built from the same X-macro list as the
 * environment parser, so the README's table cannot drift from the code. */
#include <stdio.h>
#include <string.h>

#include "options.h"

static const char *kind_name(enum lab_option_kind k)
{
    return k == LAB_OPT_BOOL ? "0/1" : k == LAB_OPT_UINT ? "number" : k == LAB_OPT_PATH ? "file name" : "0/1/classes/json";
}

/* A default as the README shows it (a PATH option's is always 0: none). */
static const char *show(enum lab_option_kind k, unsigned long def)
{
    static char buf[24];
    if (k == LAB_OPT_PATH)
        return "(none)";
    snprintf(buf, sizeof buf, "%lu", def);
    return buf;
}

int main(int argc, char **argv)
{
    int md = argc > 1 && !strcmp(argv[1], "--markdown");
    if (md) {
        printf("| variable | values | default | meaning |\n|---|---|---|---|\n");
    }
#define X(name, kind, def, doc)                                                                \
    if (md)                                                                                    \
        printf("| `LABYRINTH_%s` | %s | %s | %s |\n", #name, kind_name(LAB_OPT_##kind), show(LAB_OPT_##kind, def), doc); \
    else                                                                                       \
        printf("LABYRINTH_%s=%s  (%s) %s\n", #name, show(LAB_OPT_##kind, def), kind_name(LAB_OPT_##kind), doc);
    LAB_OPTIONS(X)
#undef X
    return 0;
}
