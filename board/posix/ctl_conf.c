/* ctl_conf: see ctl_conf.h. */
#include "ctl_conf.h"

#include <string.h>

bool ctl_profile_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CTL_PROFILE_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool copy_out(const char *s, size_t n, char *out, size_t cap)
{
    if (cap == 0 || n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

bool ctl_conf_get(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *line = text;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        const char *p = line;
        while (p < end && is_space(*p))
            p++;
        if (p < end && *p != '#' && (size_t)(end - p) > klen &&
            memcmp(p, key, klen) == 0) {
            const char *q = p + klen;
            while (q < end && is_space(*q))
                q++;
            if (q < end && *q == '=') {
                q++;
                while (q < end && is_space(*q))
                    q++;
                const char *v_end = end;
                while (v_end > q && is_space(v_end[-1]))
                    v_end--;
                return copy_out(q, (size_t)(v_end - q), out, cap);
            }
        }
        line = *end == '\n' ? end + 1 : end;
    }
    return false;
}

bool ctl_field_get(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *end = strchr(line, '\n');
    if (end == NULL)
        end = line + strlen(line);
    const char *p = line;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *w = p;
        while (p < end && *p != ' ')
            p++;
        if ((size_t)(p - w) > klen && memcmp(w, key, klen) == 0 && w[klen] == '=')
            return copy_out(w + klen + 1, (size_t)(p - w - klen - 1), out, cap);
    }
    return false;
}
