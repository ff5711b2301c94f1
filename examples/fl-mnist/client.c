// A federated-learning client for Propeller's FL rounds (WASI, built with clang --target=wasm32-wasi).
//
// Trains softmax regression on this proplet's local shard and prints the update, as upstream's FL client does:
// one JSON object on stdout, no trailing newline:
//   {"round_id","proplet_id","base_model_uri","num_samples","metrics":{"loss","accuracy"},"update":{"w":[…],"b":[…]}}
//
// Reads (env): ROUND_ID (required), MODEL_PATH or MODEL_DATA (the global model {"w":[C*F],"b":[C]}), DATASET_PATH or
// DATASET_DATA ({"data":[{"x":[F numbers],"y":class},…]}), HYPERPARAMS ({"epochs","lr","batch_size","mu"}; mu > 0
// adds FedProx's proximal term mu/2·|w - w_global|² to the local objective), PROPLET_ID, MODEL_URI.
// The model's shape comes from the model: C = len(b) classes, F = len(w)/C features.
// The metrics are the returned model's loss and accuracy on this shard, measured after training.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  fclose(f);
  return buf;
}

/** The document from its file (large) or its env var (small), whichever the proplet gave. */
static char *input(const char *path_var, const char *data_var) {
  const char *path = getenv(path_var);
  if (path && *path) {
    char *text = read_file(path);
    if (text) return text;
  }
  const char *data = getenv(data_var);
  return data ? strdup(data) : NULL;
}

/** After `"key":` in s, or NULL. */
static const char *after_key(const char *s, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(s, pat);
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ' || *p == ':') p++;
  return p;
}

/** Parses a JSON number array (or a lone number) at p into a growing buffer; returns its length. */
static size_t parse_numbers(const char *p, float **out, const char **end) {
  size_t n = 0, cap = 16;
  float *v = malloc(cap * sizeof(float));
  if (*p != '[') {
    v[n++] = strtof(p, (char **)end);
    *out = v;
    return n;
  }
  p++;
  for (;;) {
    while (*p == ' ' || *p == ',' || *p == '\n') p++;
    if (*p == ']' || !*p) break;
    if (n == cap) v = realloc(v, (cap *= 2) * sizeof(float));
    char *next;
    v[n++] = strtof(p, &next);
    if (next == p) break;
    p = next;
  }
  if (end) *end = *p ? p + 1 : p;
  *out = v;
  return n;
}

static double hyper(const char *hp, const char *key, double dflt) {
  const char *p = hp ? after_key(hp, key) : NULL;
  return p ? strtod(p, NULL) : dflt;
}

static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

static void json_string(const char *s) {
  putchar('"');
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
  putchar('"');
}

static void print_array(const float *v, size_t n) {
  putchar('[');
  for (size_t i = 0; i < n; i++) printf(i ? ",%.6g" : "%.6g", v[i]);
  putchar(']');
}

int main(void) {
  const char *round = getenv("ROUND_ID");
  if (!round || !*round) {
    fprintf(stderr, "Missing ROUND_ID environment variable\n");
    return 1;
  }
  const char *hp = getenv("HYPERPARAMS");
  int epochs = (int)hyper(hp, "epochs", 1);
  double lr = hyper(hp, "lr", 0.1);
  int batch = (int)hyper(hp, "batch_size", 16);
  double mu = hyper(hp, "mu", 0);
  if (batch < 1) batch = 1;

  char *model = input("MODEL_PATH", "MODEL_DATA");
  if (!model) {
    fprintf(stderr, "no model: MODEL_PATH and MODEL_DATA are both missing\n");
    return 1;
  }
  float *w, *b;
  const char *pw = after_key(model, "w"), *pb = after_key(model, "b");
  if (!pw || !pb) {
    fprintf(stderr, "the model has no \"w\" or no \"b\"\n");
    return 1;
  }
  size_t nw = parse_numbers(pw, &w, NULL), C = parse_numbers(pb, &b, NULL);
  size_t F = C ? nw / C : 0;
  if (!C || !F || F * C != nw) {
    fprintf(stderr, "the model's w (%zu) is not classes (%zu) x features\n", nw, C);
    return 1;
  }
  float *w0 = malloc(nw * sizeof(float));
  memcpy(w0, w, nw * sizeof(float));

  // The shard: every {"x":[…],"y":k} in "data".
  char *data = input("DATASET_PATH", "DATASET_DATA");
  size_t n = 0, cap = 256;
  float *X = malloc(cap * F * sizeof(float));
  int *Y = malloc(cap * sizeof(int));
  const char *p = data ? after_key(data, "data") : NULL;
  while (p && (p = strstr(p, "\"x\""))) {
    p = after_key(p, "x");
    float *x;
    const char *end;
    size_t len = parse_numbers(p, &x, &end);
    const char *py = after_key(end, "y");
    if (!py) break;
    int y = (int)strtol(py, (char **)&p, 10);
    if (len == F && y >= 0 && (size_t)y < C) {
      if (n == cap) {
        cap *= 2;
        X = realloc(X, cap * F * sizeof(float));
        Y = realloc(Y, cap * sizeof(int));
      }
      memcpy(X + n * F, x, F * sizeof(float));
      Y[n++] = y;
    }
    free(x);
  }
  fprintf(stderr, "Loaded dataset with %zu samples; model %zu classes x %zu features\n", n, C, F);

  for (const char *s = round; *s; s++) rng_state = rng_state * 31 + (unsigned char)*s;
  const char *me = getenv("PROPLET_ID");
  for (const char *s = me ? me : ""; *s; s++) rng_state = rng_state * 31 + (unsigned char)*s;

  size_t *order = malloc((n ? n : 1) * sizeof(size_t));
  for (size_t i = 0; i < n; i++) order[i] = i;
  float *gw = calloc(nw, sizeof(float)), *gb = calloc(C, sizeof(float)), *z = malloc(C * sizeof(float));
  double loss = 0;
  size_t correct = 0;
  for (int e = 0; e < epochs; e++) {
    for (size_t i = n; i > 1; i--) {  // Fisher-Yates
      size_t j = rng() % i, t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
    for (size_t start = 0; start < n; start += (size_t)batch) {
      size_t stop = start + (size_t)batch < n ? start + (size_t)batch : n;
      memset(gw, 0, nw * sizeof(float));
      memset(gb, 0, C * sizeof(float));
      for (size_t k = start; k < stop; k++) {
        const float *x = X + order[k] * F;
        int y = Y[order[k]];
        float max = -INFINITY;
        for (size_t c = 0; c < C; c++) {
          float s = b[c];
          const float *wc = w + c * F;
          for (size_t f = 0; f < F; f++) s += wc[f] * x[f];
          z[c] = s;
          if (s > max) max = s;
        }
        double sum = 0;
        for (size_t c = 0; c < C; c++) {
          z[c] = expf(z[c] - max);
          sum += z[c];
        }
        for (size_t c = 0; c < C; c++) {
          float g = (float)(z[c] / sum) - (c == (size_t)y ? 1.0f : 0.0f);
          gb[c] += g;
          if (g == 0) continue;
          float *gwc = gw + c * F;
          for (size_t f = 0; f < F; f++) gwc[f] += g * x[f];
        }
      }
      float scale = (float)(lr / (double)(stop - start));
      for (size_t i = 0; i < nw; i++) w[i] -= scale * gw[i] + (float)(lr * mu) * (w[i] - w0[i]);
      for (size_t c = 0; c < C; c++) b[c] -= scale * gb[c];
    }
  }
  // What is reported is the returned model's loss and accuracy on this shard, measured after training: a number
  // anyone can check with the update and the same data (test/e2e/fl-client.test.ts). The argmax is taken on the
  // logits, before any of them is exponentiated.
  for (size_t k = 0; k < n; k++) {
    const float *x = X + k * F;
    int y = Y[k];
    size_t best = 0;
    for (size_t c = 0; c < C; c++) {
      float s = b[c];
      const float *wc = w + c * F;
      for (size_t f = 0; f < F; f++) s += wc[f] * x[f];
      z[c] = s;
      if (s > z[best]) best = c;
    }
    double sum = 0;
    for (size_t c = 0; c < C; c++) sum += exp((double)z[c] - (double)z[best]);
    correct += best == (size_t)y;
    loss += -log(exp((double)z[y] - (double)z[best]) / sum + 1e-12);
  }
  fprintf(stderr, "Trained %d epoch(s) on %zu samples: loss %.4f, accuracy %.4f\n", epochs, n,
          n ? loss / (double)n : 0.0, n ? (double)correct / (double)n : 0.0);

  printf("{\"round_id\":");
  json_string(round);
  printf(",\"proplet_id\":");
  json_string(me ? me : "proplet-unknown");
  printf(",\"base_model_uri\":");
  json_string(getenv("MODEL_URI"));
  printf(",\"num_samples\":%zu,\"metrics\":{\"loss\":%.6g,\"accuracy\":%.6g},\"update\":{\"w\":", n,
         n ? loss / (double)n : 0.0, n ? (double)correct / (double)n : 0.0);
  print_array(w, nw);
  printf(",\"b\":");
  print_array(b, C);
  printf("}}");
  return 0;
}
