/*
 * sqlite.c - the SQLite store backend (one database file in WAL mode).
 *
 * Connections: one writer, used only by the store's committer thread (and
 * by open/close before and after it runs), holding every write statement
 * prepared; and a pool of read connections, each owned by one thread at a
 * time (SQLITE_OPEN_NOMUTEX), which WAL lets read while the writer commits.
 *
 * Schema (version 1): jobs keyed by the caller's id (the rowid), small
 * columns first and the large JSON texts last so that scans read little;
 * job_events keyed (job_id, seq); tenants; blobs and blob_owners. Indexes:
 * jobs(tenant) for per-tenant listing in id order, a unique partial index
 * on (tenant, idem_key) for idempotency, and a partial index of the ids of
 * unfinished jobs (state < 5) so that restart reads only those. Each job row
 * counts its events (nevents). Inserting a job also writes its first event
 * (seq 1, the submission).
 *
 * Version 2 adds checkpoints: the latest saved state of each unfinished job
 * of a checkpointing kernel, written only while the job exists and is not
 * final, deleted by the update that makes it final.
 *
 * Version 3 keeps a job's events in its own row (column ev, one line per
 * event: "state attempt time_ns error_code[ message]\n", control characters
 * of the message written as spaces) instead of a job_events row each: a
 * state change is then one UPDATE of the row, and an insert or update
 * dirties no other table, which halves the store's work per job. Rows of
 * job_events written before version 3 stay where they are and come first
 * (seq 1..m, then the row's lines); the view job_event_rows shows both as
 * rows, for SQL readers.
 *
 * WAL checkpoints run on a thread of their own (see "checkpoints" below).
 */
#include <fcntl.h>
#include <linux/ioprio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "gexec/gexec_fault.h"
#include "hmap.h"
#include "store_int.h"

#define SCHEMA_VERSION 5
#define FINAL_SQL "5" /* GX__STORE_FIRST_FINAL in SQL */
/* the settings row holding the highest job id retention deleted */
#define MAXDEL_KEY "store.max_deleted_job_id"
#define NOTE_REQUEUED "requeued after restart"

/* ---- schema ----------------------------------------------------------------- */

/* migrations[v - 1] takes a database from version v - 1 to v. Append only. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE jobs("
    " id INTEGER PRIMARY KEY,"
    " state INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " priority INTEGER NOT NULL,"
    " submit_ns INTEGER NOT NULL,"
    " start_ns INTEGER NOT NULL,"
    " end_ns INTEGER NOT NULL,"
    " device INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL,"
    " nevents INTEGER NOT NULL,"
    " tenant TEXT NOT NULL,"
    " kernel TEXT NOT NULL,"
    " idem_key TEXT,"
    " error TEXT,"
    " labels TEXT,"
    " result TEXT,"
    " spec TEXT NOT NULL);"
    "CREATE INDEX jobs_tenant ON jobs(tenant);"
    "CREATE UNIQUE INDEX jobs_idem ON jobs(tenant, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX jobs_unfinished ON jobs(id) WHERE state < " FINAL_SQL ";"
    "CREATE TABLE job_events("
    " job_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " time_ns INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL,"
    " error TEXT,"
    " PRIMARY KEY(job_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE tenants("
    " name TEXT PRIMARY KEY,"
    " weight REAL NOT NULL,"
    " max_running INTEGER NOT NULL,"
    " quotas TEXT,"
    " created_ns INTEGER NOT NULL,"
    " updated_ns INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE blobs("
    " id TEXT PRIMARY KEY,"
    " size INTEGER NOT NULL,"
    " created_ns INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE blob_owners("
    " tenant TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " PRIMARY KEY(tenant, id)) WITHOUT ROWID;",
    /* 2: the latest checkpoint of each unfinished job (deleted when the job
     * ends) */
    "CREATE TABLE checkpoints("
    " job_id INTEGER PRIMARY KEY,"
    " attempt INTEGER NOT NULL,"
    " step INTEGER NOT NULL,"
    " time_ns INTEGER NOT NULL,"
    " state BLOB NOT NULL);",
    /* 3: events in the job row (see the top of the file) */
    "ALTER TABLE jobs ADD COLUMN ev TEXT;"
    "CREATE VIEW job_event_rows(job_id, seq, state, attempt, time_ns, error_code, error) AS"
    " WITH RECURSIVE split(job_id, seq, line, rest) AS ("
    "  SELECT id, (SELECT count(*) FROM job_events e WHERE e.job_id = jobs.id), NULL, ev"
    "  FROM jobs WHERE ev IS NOT NULL"
    "  UNION ALL"
    "  SELECT job_id, seq + 1, substr(rest, 1, instr(rest, char(10)) - 1),"
    "   substr(rest, instr(rest, char(10)) + 1) FROM split WHERE instr(rest, char(10)) > 0),"
    " f1(job_id, seq, state, r1) AS (SELECT job_id, seq, CAST(line AS INTEGER),"
    "  substr(line, instr(line, ' ') + 1) FROM split WHERE line IS NOT NULL),"
    " f2(job_id, seq, state, attempt, r2) AS (SELECT job_id, seq, state, CAST(r1 AS INTEGER),"
    "  substr(r1, instr(r1, ' ') + 1) FROM f1),"
    " f3(job_id, seq, state, attempt, time_ns, r3) AS (SELECT job_id, seq, state, attempt,"
    "  CAST(r2 AS INTEGER), substr(r2, instr(r2, ' ') + 1) FROM f2)"
    " SELECT job_id, seq, state, attempt, time_ns, error_code, error FROM job_events"
    " UNION ALL"
    " SELECT job_id, seq, state, attempt, time_ns, CAST(r3 AS INTEGER),"
    "  CASE WHEN instr(r3, ' ') > 0 THEN substr(r3, instr(r3, ' ') + 1) END FROM f3;",
    /* 4: the daemon's durable settings (an operator's device drains) */
    "CREATE TABLE settings("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL,"
    " updated_ns INTEGER NOT NULL) WITHOUT ROWID;",
    /* 5: retention: when each blob was last uploaded or named by a job, and
     * when it was doomed (0: not); owners found by blob */
    "ALTER TABLE blobs ADD COLUMN used_ns INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN doomed_ns INTEGER NOT NULL DEFAULT 0;"
    /* jobs named blobs without a trace until now: every blob counts as
     * used at the upgrade, so none goes before a whole retention */
    "UPDATE blobs SET used_ns = max(created_ns, CAST(strftime('%s', 'now') AS INTEGER) * 1000000000);"
    "CREATE INDEX blobs_used ON blobs(used_ns);"
    "CREATE INDEX blobs_doomed ON blobs(doomed_ns) WHERE doomed_ns > 0;"
    "CREATE INDEX blob_owners_id ON blob_owners(id);",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == SCHEMA_VERSION,
               "one migration per schema version");

/* Columns of a job as row_job reads them. */
#define JOB_COLS                                                                          \
    "id, tenant, kernel, spec, state, attempt, priority, submit_ns, start_ns, end_ns, " \
    "device, error_code, error, idem_key, labels, result"

/* ---- connections ------------------------------------------------------------ */

enum { INS_ROWS = 50, INS_SIZES = 4 };
static const int ins_sizes[INS_SIZES] = {INS_ROWS, 16, 4, 1};

enum { L_TENANT = 1, L_STATE = 2, L_UNFIN = 4, L_KEXACT = 8, L_KNAME = 16, L_LABEL = 32,
       L_DESC = 64, L_VARIANTS = 128 };

typedef struct rconn {
    sqlite3 *db;
    sqlite3_stmt *get_job, *events, *job_ev, *exists, *max_id, *unfinished, *tenant_get, *tenant_list,
        *blob_owned, *ckpt_get, *settings, *find_idem, *bl_cand, *bl_unfin;
    sqlite3_stmt *list[L_VARIANTS]; /* by L_* bits, prepared on first use */
    struct rconn *next;
} rconn;

struct gx_store_backend {
    char *path;
    int busy_ms;
    sqlite3 *w; /* the writer */
    sqlite3_stmt *begin, *commit, *rollback, *ins_job, *find_idem, *sel_job, *upd_job,
        *exists, *tenant_up, *blob_ins, *owner_ins, *rq_jobs, *ckpt_put, *ckpt_del, *set_put, *set_del,
        *blob_touch, *sel_spec, *pg_scan, *pg_job, *pg_jev, *pg_doomed, *pg_blob, *pg_owner, *pg_doom, *pg_maxdel,
        *pg_keep;
    int ckpt_rows; /* the checkpoints table may hold rows: final updates delete */
    sqlite3_stmt *ins_jobs[INS_SIZES - 1]; /* INS_ROWS, 16, 4 rows (1: ins_job) */
    struct ins_ref *refs; /* w_insert's scratch (writer only) */
    size_t refs_cap;
    char *evs;     /* event lines being bound (writer only) */
    size_t evs_len, evs_cap;

    pthread_mutex_t pmu; /* read pool */
    pthread_cond_t pcv;
    rconn *idle;
    int nopen, maxopen;

    /* Background checkpointer: copies the WAL into the database on its own
     * connection and thread, so the committer does not wait for it. */
    sqlite3 *ck;
    pthread_t ck_thread;
    int ck_running;
    pthread_mutex_t ckmu;
    pthread_cond_t ckcv;
    int ck_wanted, ck_stop;
    int ck_soft, ck_hard; /* WAL frames: wake the checkpointer; checkpoint inline */
    int64_t ck_bytes;     /* the WAL size that wakes it */
};

/* The file and the system's reason, when SQLite had one (a read-only or
 * full file system, no permission): "; /data/gexec.db: Read-only file
 * system". "" otherwise. */
static const char *os_reason(sqlite3 *db, char *buf, size_t cap) {
    buf[0] = '\0';
    int e = db ? sqlite3_system_errno(db) : 0;
    const char *f = db ? sqlite3_db_filename(db, "main") : NULL;
    if (e) snprintf(buf, cap, "; %s: %s", f && *f ? f : "the database", strerror(e));
    return buf;
}

static int db_err(gx_error *err, sqlite3 *db, int rc, const char *what) {
    char why[300];
    return gx_error_set(err, GX_ESTORE, NULL, "sqlite: %s (%s, code %d%s)",
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), what, rc, os_reason(db, why, sizeof why));
}

static int open_conn(const char *path, int create, int busy_ms, sqlite3 **out, gx_error *err) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (create) {
        /* a new store is its owner's only (0600, whatever the umask): it
         * holds every tenant's inputs, results and keys of idempotency;
         * SQLite gives its -wal and -shm files the same mode */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        gx_error_set(err, GX_ESTORE, "path", "sqlite: cannot open %s: %s", path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return GX_ESTORE;
    }
    /* SQLite opens a file it may not write read-only without a word; every
     * commit would then fail, and the start would wait for them */
    if (sqlite3_db_readonly(db, "main") == 1) {
        gx_error_set(err, GX_ESTORE, "path",
                     "%s is read-only for this user (uid %u): gexecd writes every job to it; give the file "
                     "(and its -wal and -shm files) to the user gexecd runs as, mode 0600",
                     path, (unsigned)geteuid());
        sqlite3_close(db);
        return GX_ESTORE;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms);
    *out = db;
    return 0;
}

static int exec(sqlite3 *db, const char *sql, gx_error *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        char why[300];
        gx_error_set(err, GX_ESTORE, NULL, "sqlite: %s (in \"%.60s\"%s)", msg ? msg : sqlite3_errstr(rc), sql,
                     os_reason(db, why, sizeof why));
        sqlite3_free(msg);
        return GX_ESTORE;
    }
    return 0;
}

static int prep(sqlite3 *db, sqlite3_stmt **st, const char *sql, gx_error *err) {
    if (*st) return 0;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) return db_err(err, db, rc, "prepare");
    return 0;
}

static void rconn_close(rconn *c) {
    if (!c) return;
    sqlite3_stmt **all[] = {&c->get_job,    &c->events,      &c->job_ev,      &c->exists,
                            &c->max_id,     &c->unfinished,  &c->tenant_get,
                            &c->tenant_list, &c->blob_owned, &c->ckpt_get, &c->settings, &c->find_idem,
                            &c->bl_cand,    &c->bl_unfin};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(*all[i]);
    for (int i = 0; i < L_VARIANTS; i++) sqlite3_finalize(c->list[i]);
    sqlite3_close(c->db);
    free(c);
}

/* A read connection for this thread, waiting when all are in use. */
static rconn *rc_get(gx_store_backend *b, gx_error *err) {
    pthread_mutex_lock(&b->pmu);
    while (!b->idle && b->nopen >= b->maxopen) pthread_cond_wait(&b->pcv, &b->pmu);
    rconn *c = b->idle;
    if (c) {
        b->idle = c->next;
        pthread_mutex_unlock(&b->pmu);
        return c;
    }
    b->nopen++;
    pthread_mutex_unlock(&b->pmu);
    c = calloc(1, sizeof *c);
    if (c && open_conn(b->path, 0, b->busy_ms, &c->db, err) == 0 &&
        exec(c->db, "PRAGMA query_only=1; PRAGMA cache_size=-16384;", err) == 0)
        return c;
    if (!c) gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    rconn_close(c);
    pthread_mutex_lock(&b->pmu);
    b->nopen--;
    pthread_cond_signal(&b->pcv);
    pthread_mutex_unlock(&b->pmu);
    return NULL;
}

static void rc_put(gx_store_backend *b, rconn *c) {
    pthread_mutex_lock(&b->pmu);
    c->next = b->idle;
    b->idle = c;
    pthread_cond_signal(&b->pcv);
    pthread_mutex_unlock(&b->pmu);
}

/* Reset after use: ends the read transaction, drops borrowed bindings. */
static void done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* ---- open / close -------------------------------------------------------------- */

static int migrate(gx_store_backend *b, gx_error *err) {
    sqlite3 *db = b->w;
    int rc = exec(db, "BEGIN IMMEDIATE; "
                      "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);",
                  err);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    rc = prep(db, &st, "SELECT coalesce(max(version), 0) FROM schema_version", err);
    int version = 0;
    if (rc == 0) {
        if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (rc == 0 && version > SCHEMA_VERSION)
        rc = gx_error_set(err, GX_EUNSUPPORTED, "path",
                          "database %s has schema version %d, newer than this build (%d)",
                          b->path, version, SCHEMA_VERSION);
    for (int v = version + 1; rc == 0 && v <= SCHEMA_VERSION; v++) {
        rc = exec(db, migrations[v - 1], err);
        if (rc == 0) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES(%d)", v);
            rc = exec(db, sql, err);
        }
    }
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec(db, "COMMIT", err);
}

static int prepare_writer(gx_store_backend *b, gx_error *err) {
    sqlite3 *db = b->w;
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } t[] = {
        {&b->begin, "BEGIN IMMEDIATE"},
        {&b->commit, "COMMIT"},
        {&b->rollback, "ROLLBACK"},
        {&b->ins_job,
         "INSERT INTO jobs(id, tenant, kernel, spec, state, attempt, priority, submit_ns,"
         " start_ns, end_ns, device, error_code, error, idem_key, labels, result, nevents, ev)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 1, ?17)"
         " ON CONFLICT(tenant, idem_key) WHERE idem_key IS NOT NULL DO NOTHING"},
        {&b->find_idem, "SELECT id FROM jobs WHERE tenant = ?1 AND idem_key = ?2"},
        /* the fence is the UPDATE's own WHERE; sel_job classifies an
         * update that changed nothing and checks a from_mask first (one
         * writer, so nothing changes in between) */
        {&b->sel_job, "SELECT attempt, state FROM jobs WHERE id = ?1"},
        {&b->sel_spec, "SELECT tenant, spec FROM jobs WHERE id = ?1"},
        {&b->upd_job,
         "UPDATE jobs SET state = ?2, attempt = ?3,"
         " start_ns = CASE WHEN ?4 & 1 THEN ?5 ELSE start_ns END,"
         " end_ns = CASE WHEN ?4 & 2 THEN ?6 ELSE end_ns END,"
         " device = CASE WHEN ?4 & 4 THEN ?7 ELSE device END,"
         " error_code = CASE WHEN ?4 & 8 THEN ?8 ELSE error_code END,"
         " error = CASE WHEN ?4 & 8 THEN ?9 ELSE error END,"
         " result = CASE WHEN ?4 & 16 THEN ?10 ELSE result END,"
         " nevents = nevents + ?11, ev = coalesce(ev, '') || ?12"
         " WHERE id = ?1 AND attempt <= ?3 AND (state < " FINAL_SQL " OR attempt < ?3 OR ?13)"},
        {&b->exists, "SELECT 1 FROM jobs WHERE id = ?1"},
        {&b->tenant_up,
         "INSERT INTO tenants(name, weight, max_running, quotas, created_ns, updated_ns)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(name) DO UPDATE SET"
         " weight = excluded.weight, max_running = excluded.max_running,"
         " quotas = excluded.quotas, updated_ns = excluded.updated_ns"},
        /* every use moves used_ns (by 1 ns at least, whatever the clock
         * says): that is how the retention's doom sees a use that came
         * after it read its candidates */
        {&b->blob_ins, "INSERT INTO blobs(id, size, created_ns, used_ns) VALUES(?1, ?2, ?3, ?3)"
                       " ON CONFLICT(id) DO UPDATE SET used_ns = max(used_ns + 1, excluded.used_ns), doomed_ns = 0"},
        /* retention (w_purge); a job naming a blob takes it back */
        /* only a blob the job's tenant owns: one deleted by the retention and
         * uploaded again by another tenant since the job was decoded is not
         * the job's to use (at a restart it could not be loaded) */
        {&b->blob_touch, "UPDATE blobs SET used_ns = max(used_ns + 1, ?2), doomed_ns = 0 WHERE id = ?1"
                         " AND EXISTS (SELECT 1 FROM blob_owners o WHERE o.tenant = ?3 AND o.id = ?1)"},
        {&b->pg_scan, "SELECT id, state, end_ns, submit_ns FROM jobs WHERE id > ?1 ORDER BY id"},
        {&b->pg_job, "DELETE FROM jobs WHERE id = ?1"},
        {&b->pg_jev, "DELETE FROM job_events WHERE job_id = ?1"},
        {&b->pg_doomed, "SELECT id FROM blobs WHERE doomed_ns > 0 AND doomed_ns < ?1"},
        {&b->pg_blob, "DELETE FROM blobs WHERE id = ?1"},
        {&b->pg_owner, "DELETE FROM blob_owners WHERE id = ?1"},
        /* a candidate found outside the transaction, unless used since */
        {&b->pg_doom, "UPDATE blobs SET doomed_ns = ?2 WHERE id = ?1 AND used_ns = ?3 AND doomed_ns = 0"},
        /* ids are never given twice: the highest deleted one is kept */
        {&b->pg_maxdel, "INSERT INTO settings(key, value, updated_ns) VALUES('" MAXDEL_KEY "', ?1, ?2)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns"
                        " WHERE CAST(excluded.value AS INTEGER) > CAST(settings.value AS INTEGER)"},
        {&b->pg_keep, "UPDATE blobs SET used_ns = ?2 WHERE id = ?1"},
        {&b->owner_ins, "INSERT INTO blob_owners(tenant, id, created_ns) VALUES(?1, ?2, ?3)"
                        " ON CONFLICT(tenant, id) DO NOTHING"},
        /* The requeue, with its event line (state 0, the new attempt).
         * "state < 5" lets the planner use the partial index. */
        {&b->rq_jobs,
         "UPDATE jobs SET state = 0, attempt = attempt + 1, nevents = nevents + 1,"
         " device = -1, start_ns = 0,"
         " ev = coalesce(ev, '') || '0 ' || (attempt + 1) || ' ' || ?1 || ' 0 " NOTE_REQUEUED "' || char(10)"
         " WHERE state IN (2, 3) AND state < " FINAL_SQL},
        {&b->ckpt_put,
         "INSERT INTO checkpoints(job_id, attempt, step, time_ns, state)"
         " SELECT id, ?2, ?3, ?4, ?5 FROM jobs WHERE id = ?1 AND state < " FINAL_SQL
         " ON CONFLICT(job_id) DO UPDATE SET attempt = excluded.attempt, step = excluded.step,"
         " time_ns = excluded.time_ns, state = excluded.state"},
        {&b->ckpt_del, "DELETE FROM checkpoints WHERE job_id = ?1"},
        {&b->set_put, "INSERT INTO settings(key, value, updated_ns) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns"},
        {&b->set_del, "DELETE FROM settings WHERE key = ?1"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = prep(db, t[i].st, t[i].sql, err);
        if (rc) return rc;
    }
    static const char head[] =
        "INSERT INTO jobs(id, tenant, kernel, spec, state, attempt, priority, submit_ns,"
        " start_ns, end_ns, device, error_code, error, idem_key, labels, result, nevents, ev) VALUES";
    char sql[sizeof head + INS_ROWS * 40];
    for (int k = 0; k < INS_SIZES - 1; k++) {
        size_t len = (size_t)snprintf(sql, sizeof sql, "%s", head);
        for (int r = 0; r < ins_sizes[k]; r++)
            len += (size_t)snprintf(sql + len, sizeof sql - len, "%s(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)", r ? "," : "");
        int rc = prep(db, &b->ins_jobs[k], sql, err);
        if (rc) return rc;
    }
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------------
 * The WAL is copied back into the database by a thread of its own once it
 * holds CK_SOFT_BYTES; a PASSIVE checkpoint never blocks the writer or the
 * readers. If the WAL still grows to CK_HARD_FACTOR times that (the
 * checkpointer cannot keep up), the writer checkpoints inline after its commit, which
 * bounds the WAL and lets the next transaction restart it from the top.
 * Each checkpoint ends with an fsync of the database, whose writes delayed
 * the commits' own fsyncs while the checkpointer had the same I/O priority:
 * commits over 0.1 s in 3 of 8 six-second runs at 256 connections with 16
 * MiB between checkpoints, 1 of 8 with 64 MiB. In the idle I/O class (see
 * ck_main) none in 16 runs with either. The WAL file is kept at up to twice
 * that size after a restart from the top (journal_size_limit), so that it is
 * not cut and grown again every round. */
#define CK_SOFT_BYTES (64 << 20)
#define CK_HARD_FACTOR 4

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
    gx_store_backend *b = arg;
    if (frames >= b->ck_hard) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (frames >= b->ck_soft) {
        pthread_mutex_lock(&b->ckmu);
        if (!b->ck_wanted) {
            b->ck_wanted = 1;
            pthread_cond_signal(&b->ckcv);
        }
        pthread_mutex_unlock(&b->ckmu);
    }
    return SQLITE_OK;
}

static void *ck_main(void *arg) {
    gx_store_backend *b = arg;
    pthread_setname_np(pthread_self(), "gx-checkpoint");
    /* The checkpoint's writes to the database (its fsync) queue at the disk
     * ahead of the commits' WAL writes and delay them by as long as they
     * take to write (stalls of 0.1-1 s were seen). In the idle I/O class
     * they go out in the gaps between commits instead (the kernel's
     * scheduler lets them wait at most its aging time, mq-deadline: 10 s; the
     * writer's inline checkpoint bounds the WAL if they wait that long).
     * Lowering one's own I/O priority needs no privilege; where it fails
     * nothing changes. */
    syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0));
    pthread_mutex_lock(&b->ckmu);
    for (;;) {
        while (!b->ck_wanted && !b->ck_stop) pthread_cond_wait(&b->ckcv, &b->ckmu);
        if (b->ck_stop) break;
        b->ck_wanted = 0;
        pthread_mutex_unlock(&b->ckmu);
        /* Errors (busy, I/O) are left for the next round or the writer. */
        sqlite3_wal_checkpoint_v2(b->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&b->ckmu);
    }
    pthread_mutex_unlock(&b->ckmu);
    return NULL;
}

static int ck_start(gx_store_backend *b, gx_error *err) {
    sqlite3_stmt *st = NULL;
    int rc = prep(b->w, &st, "PRAGMA page_size", err);
    if (rc) return rc;
    int page = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 4096;
    sqlite3_finalize(st);
    b->ck_soft = (int)(b->ck_bytes / (page > 0 ? page : 4096));
    if (b->ck_soft < 1) b->ck_soft = 1;
    b->ck_hard = b->ck_soft * CK_HARD_FACTOR;
    rc = open_conn(b->path, 0, b->busy_ms, &b->ck, err);
    if (rc) return rc;
    /* A connection learns that the database is in WAL mode when it first
     * reads it; until then sqlite3_wal_checkpoint_v2 does nothing (and
     * answers SQLITE_OK), so read once now. */
    rc = exec(b->ck, "PRAGMA journal_mode", err);
    if (rc) return rc;
    if (pthread_create(&b->ck_thread, NULL, ck_main, b) != 0)
        return gx_error_set(err, GX_ENOMEM, NULL, "cannot start the checkpoint thread");
    b->ck_running = 1;
    sqlite3_wal_hook(b->w, wal_hook, b); /* replaces the automatic checkpoints */
    return 0;
}

static void ck_stop(gx_store_backend *b) {
    if (b->ck_running) {
        pthread_mutex_lock(&b->ckmu);
        b->ck_stop = 1;
        pthread_cond_signal(&b->ckcv);
        pthread_mutex_unlock(&b->ckmu);
        pthread_join(b->ck_thread, NULL);
        b->ck_running = 0;
    }
    sqlite3_close(b->ck);
    b->ck = NULL;
}

static void sqlite_close(gx_store_backend *b) {
    if (!b) return;
    ck_stop(b);
    while (b->idle) {
        rconn *c = b->idle;
        b->idle = c->next;
        rconn_close(c);
    }
    sqlite3_stmt *all[] = {b->begin,     b->commit,   b->rollback,  b->ins_job,  b->find_idem,
                           b->sel_job, b->sel_spec, b->upd_job,  b->exists,    b->tenant_up, b->blob_ins,
                           b->owner_ins, b->rq_jobs, b->ckpt_put, b->ckpt_del, b->set_put, b->set_del,
                           b->blob_touch, b->pg_scan, b->pg_job, b->pg_jev, b->pg_doomed, b->pg_blob,
                           b->pg_owner, b->pg_doom, b->pg_maxdel, b->pg_keep};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    for (int k = 0; k < INS_SIZES - 1; k++) sqlite3_finalize(b->ins_jobs[k]);
    free(b->evs);
    free(b->refs);
    sqlite3_close(b->w); /* the last connection: checkpoints and removes the WAL */
    pthread_mutex_destroy(&b->pmu);
    pthread_cond_destroy(&b->pcv);
    pthread_mutex_destroy(&b->ckmu);
    pthread_cond_destroy(&b->ckcv);
    free(b->path);
    free(b);
}

/* SQLite's allocation statistics take a global mutex on every malloc and
 * free; nothing here reads them. Only possible before SQLite initializes
 * (otherwise SQLITE_MISUSE, harmless). */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;
static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static int sqlite_open(const gx_store_config *cfg, gx_store_backend **out, gx_error *err) {
    *out = NULL;
    pthread_once(&sqlite_once, sqlite_setup);
    if (!cfg->path || !*cfg->path)
        return gx_error_set(err, GX_EINVAL, "path", "the sqlite backend needs a database path");
    int full = 1;
    if (cfg->synchronous && strcmp(cfg->synchronous, "full") != 0) {
        if (strcmp(cfg->synchronous, "normal") != 0)
            return gx_error_set(err, GX_EINVAL, "synchronous",
                                "synchronous must be \"full\" or \"normal\", not \"%s\"",
                                cfg->synchronous);
        full = 0;
    }
    if (cfg->read_conns < 0 || cfg->busy_timeout_ms < 0 || cfg->test_max_page_count < 0)
        return gx_error_set(err, GX_EINVAL, cfg->read_conns < 0 ? "read_conns" : "busy_timeout_ms",
                            "negative setting");
    gx_store_backend *b = calloc(1, sizeof *b);
    if (!b) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    b->path = strdup(cfg->path);
    b->busy_ms = cfg->busy_timeout_ms ? cfg->busy_timeout_ms : 5000;
    b->maxopen = cfg->read_conns ? cfg->read_conns : 4;
    b->ck_bytes = cfg->wal_checkpoint_bytes > 0 ? cfg->wal_checkpoint_bytes : CK_SOFT_BYTES;
    pthread_mutex_init(&b->pmu, NULL);
    pthread_cond_init(&b->pcv, NULL);
    pthread_mutex_init(&b->ckmu, NULL);
    pthread_cond_init(&b->ckcv, NULL);
    if (!b->path) {
        sqlite_close(b);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    int rc = open_conn(b->path, 1, b->busy_ms, &b->w, err);
    if (rc) goto fail;
    /* WAL: readers never block the writer; one fsync per commit with FULL. */
    sqlite3_stmt *st = NULL;
    rc = prep(b->w, &st, "PRAGMA journal_mode=WAL", err);
    if (rc) goto fail;
    int s = sqlite3_step(st);
    int wal = s == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        rc = gx_error_set(err, GX_ESTORE, "path", "sqlite: cannot switch %s to WAL mode: %s",
                          b->path, sqlite3_errmsg(b->w));
        goto fail;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous=%s; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
             "PRAGMA journal_size_limit=%lld;",
             full ? "FULL" : "NORMAL", (long long)b->ck_bytes * 2);
    rc = exec(b->w, pragmas, err);
    if (rc) goto fail;
    if (cfg->test_max_page_count > 0) {
        snprintf(pragmas, sizeof pragmas, "PRAGMA max_page_count=%lld",
                 (long long)cfg->test_max_page_count);
        rc = exec(b->w, pragmas, err);
        if (rc) goto fail;
    }
    rc = migrate(b, err);
    if (rc) goto fail;
    rc = prepare_writer(b, err);
    if (rc) goto fail;
    st = NULL;
    rc = prep(b->w, &st, "SELECT EXISTS(SELECT 1 FROM checkpoints)", err);
    if (rc) goto fail;
    b->ckpt_rows = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    rc = ck_start(b, err);
    if (rc) goto fail;
    *out = b;
    return 0;
fail:
    sqlite_close(b);
    return rc;
}

/* ---- writes (committer thread) ---------------------------------------------- */

/* Step a write statement to completion; the SQLite code. */
static int step_done(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- event lines (schema 3) ------------------------------------------------
 * "state attempt time_ns error_code[ message]\n"; control characters of the
 * message become spaces, so a line never splits. */

/* Decimal v at o (no terminator); the end. snprintf cost more than the
 * rest of a state change. */
static char *put_int(char *o, int64_t v) {
    char t[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do t[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0) *o++ = '-';
    while (n) *o++ = t[--n];
    return o;
}

/* Append one event line to the writer's buffer; SQLITE_NOMEM if it cannot. */
static int ev_put(gx_store_backend *b, int state, int attempt, int64_t t, int code, const char *msg) {
    size_t ml = msg ? strlen(msg) : 0;
    size_t need = b->evs_len + ml + 80;
    if (need > b->evs_cap) {
        size_t nc = b->evs_cap ? b->evs_cap * 2 : 1024;
        while (nc < need) nc *= 2;
        char *p = realloc(b->evs, nc);
        if (!p) return SQLITE_NOMEM;
        b->evs = p;
        b->evs_cap = nc;
    }
    char *o = b->evs + b->evs_len;
    o = put_int(o, state);
    *o++ = ' ';
    o = put_int(o, attempt);
    *o++ = ' ';
    o = put_int(o, t);
    *o++ = ' ';
    o = put_int(o, code);
    if (msg) {
        *o++ = ' ';
        for (size_t i = 0; i < ml; i++) o[i] = (unsigned char)msg[i] < 0x20 ? ' ' : msg[i];
        o += ml;
    }
    *o++ = '\n';
    *o = '\0';
    b->evs_len = (size_t)(o - b->evs);
    return SQLITE_OK;
}

/* Parse a row's event lines into rb, numbering them from seq0 + 1; 0, or
 * GX_ESTORE naming the job if a line is malformed. */
static int ev_parse(const char *p, size_t len, uint64_t job, int seq0, gx__rb *rb, gx_error *err) {
    const char *end = p + len;
    int seq = seq0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a line is written whole: a tail without \n is not one */
        long long v[4];
        const char *q = p;
        int ok = 1;
        for (int i = 0; i < 4 && ok; i++) {
            char *e;
            v[i] = strtoll(q, &e, 10);
            ok = e != q && e <= nl && (i == 3 || *e == ' ');
            q = e + (i < 3);
        }
        if (!ok || (q < nl && *q != ' '))
            return gx_error_set(err, GX_ESTORE, NULL, "sqlite: job %llu: malformed event line %d",
                                (unsigned long long)job, seq + 1);
        gx_store_event *ev = gx__rb_add(rb);
        if (!ev) return 0; /* rb->oom: reported by finish */
        *ev = (gx_store_event){.job_id = job, .seq = ++seq, .state = (int)v[0], .attempt = (int)v[1],
                               .time_ns = v[2], .error_code = (int)v[3]};
        ev->error = q < nl ? gx__rb_str(rb, q + 1, (size_t)(nl - q - 1)) : NULL;
        p = nl + 1;
    }
    return 0;
}

/* Bind job j as the row at parameter offset p of an insert statement; its
 * first event line is at ev (len bytes). */
static void bind_job(sqlite3_stmt *st, int p, const gx_store_job *j, const char *ev, size_t len) {
    sqlite3_bind_int64(st, p + 1, (sqlite3_int64)j->id);
    bind_text(st, p + 2, j->tenant);
    bind_text(st, p + 3, j->kernel);
    bind_text(st, p + 4, j->spec_json);
    sqlite3_bind_int(st, p + 5, j->state);
    sqlite3_bind_int(st, p + 6, j->attempt);
    sqlite3_bind_int(st, p + 7, j->priority);
    sqlite3_bind_int64(st, p + 8, j->submit_ns);
    sqlite3_bind_int64(st, p + 9, j->start_ns);
    sqlite3_bind_int64(st, p + 10, j->end_ns);
    sqlite3_bind_int(st, p + 11, j->device);
    sqlite3_bind_int(st, p + 12, j->error_code);
    bind_text(st, p + 13, j->error && *j->error ? j->error : NULL);
    bind_text(st, p + 14, j->idempotency_key);
    bind_text(st, p + 15, j->labels_json);
    bind_text(st, p + 16, j->result_json);
    sqlite3_bind_text(st, p + 17, ev, (int)len, SQLITE_STATIC);
}

/* Insert job i alone (the statement that handles an idempotency key, or
 * one row of a multi-row statement that hit a constraint). */
static int insert_one(gx_store_backend *b, gx_store_write *w, size_t i, const char **what) {
    sqlite3_stmt *st = b->ins_job;
    gx_store_insert_result *r = &w->u.insert.res[i];
    const gx_store_job *j = &w->u.insert.jobs[i];
    b->evs_len = 0; /* the submission is the first event of every job */
    if (ev_put(b, j->state, j->attempt, j->submit_ns, 0, NULL)) return *what = "job event", SQLITE_NOMEM;
    bind_job(st, 0, j, b->evs, b->evs_len);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE && sqlite3_changes(b->w) == 1) {
        r->job_id = j->id;
    } else if (rc == SQLITE_DONE) { /* idempotency key seen: find the original */
        sqlite3_stmt *f = b->find_idem;
        bind_text(f, 1, j->tenant);
        bind_text(f, 2, j->idempotency_key);
        rc = sqlite3_step(f);
        r->job_id = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(f, 0) : 0;
        sqlite3_reset(f);
        if (rc != SQLITE_ROW) return *what = "idempotency lookup", rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
        r->code = GX_EEXIST;
    } else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        r->code = GX_EINVAL; /* the id is taken; only this statement was undone */
    } else {
        return *what = "insert job", rc;
    }
    return SQLITE_OK;
}

/* One row of a run of insert writes. */
typedef struct ins_ref {
    gx_store_write *w;
    size_t i;
} ins_ref;

/* The inserts of nw consecutive insert writes (one request each, e.g. the
 * single submissions of a commit), as if one write: runs of jobs without
 * an idempotency key go in INS_ROWS (then 16, 4) rows a statement, across
 * the writes (a statement per row cost ~45% more per job). A constraint
 * (an id taken) undoes only its statement; its rows are then inserted one
 * by one to find which. */
/* The blobs a job's inputs name are in use from now on (taken back if
 * doomed); a job naming one that retention deleted meanwhile is refused
 * (GX_ENOTFOUND), since a restart could not restore its input. */
typedef struct touch_ctx {
    gx_store_backend *b;
    const gx_store_job *j;
    gx_store_insert_result *r;
} touch_ctx;

/* One blob the job names: SQLITE_OK, the SQLite error, or -1 when the
 * job is refused (r->code set). */
static int touch_one(void *ctx, const char *id) {
    touch_ctx *t = ctx;
    sqlite3_stmt *st = t->b->blob_touch;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, t->j->submit_ns);
    bind_text(st, 3, t->j->tenant);
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK || sqlite3_changes(t->b->w) > 0) return rc;
    /* a repeat of a stored job is answered with that job (the insert
     * finds it), whatever became of its blobs */
    if (t->j->idempotency_key) {
        sqlite3_stmt *f = t->b->find_idem;
        bind_text(f, 1, t->j->tenant);
        bind_text(f, 2, t->j->idempotency_key);
        int s = sqlite3_step(f);
        sqlite3_reset(f);
        if (s == SQLITE_ROW) return -1;
        if (s != SQLITE_DONE) return s;
    }
    t->r->code = GX_ENOTFOUND;
    return -1;
}

static int touch_blobs(gx_store_backend *b, const gx_store_job *j, gx_store_insert_result *r) {
    touch_ctx t = {b, j, r};
    int rc = gx__spec_blob_refs(j->spec_json, touch_one, &t);
    return rc < 0 ? SQLITE_OK : rc;
}

static int w_insert(gx_store_backend *b, gx_store_write *const *ws, size_t nw, const char **what) {
    size_t total = 0;
    for (size_t k = 0; k < nw; k++) total += ws[k]->u.insert.n;
    if (total > b->refs_cap) {
        ins_ref *nr = realloc(b->refs, total * sizeof *nr);
        if (!nr) return *what = "insert (out of memory)", SQLITE_NOMEM;
        b->refs = nr;
        b->refs_cap = total;
    }
    ins_ref *refs = b->refs;
    size_t m = 0;
    for (size_t k = 0; k < nw; k++)
        for (size_t i = 0; i < ws[k]->u.insert.n; i++)
            if (!ws[k]->u.insert.res[i].code) {
                int rc = touch_blobs(b, &ws[k]->u.insert.jobs[i], &ws[k]->u.insert.res[i]);
                if (rc) return *what = "blob use", rc;
            }
    for (size_t k = 0; k < nw; k++)
        for (size_t i = 0; i < ws[k]->u.insert.n; i++)
            if (!ws[k]->u.insert.res[i].code) refs[m++] = (ins_ref){ws[k], i}; /* not refused by the store's checks */
#define REF_JOB(r) (&(r).w->u.insert.jobs[(r).i])
    for (size_t i = 0; i < m;) {
        size_t run = 0;
        while (run < INS_ROWS && i + run < m && !REF_JOB(refs[i + run])->idempotency_key) run++;
        int k = 0;
        while (k < INS_SIZES - 1 && (size_t)ins_sizes[k] > run) k++;
        if (ins_sizes[k] == 1) {
            int rc = insert_one(b, refs[i].w, refs[i].i, what);
            if (rc) return rc;
            i++;
            continue;
        }
        int rows = ins_sizes[k];
        size_t off[INS_ROWS + 1];
        b->evs_len = 0;
        for (int q = 0; q < rows; q++) {
            off[q] = b->evs_len;
            const gx_store_job *j = REF_JOB(refs[i + (size_t)q]);
            if (ev_put(b, j->state, j->attempt, j->submit_ns, 0, NULL)) return *what = "job event", SQLITE_NOMEM;
        }
        off[rows] = b->evs_len;
        sqlite3_stmt *st = b->ins_jobs[k];
        for (int q = 0; q < rows; q++)
            bind_job(st, q * 17, REF_JOB(refs[i + (size_t)q]), b->evs + off[q], off[q + 1] - off[q]);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            for (int q = 0; q < rows; q++) {
                ins_ref r = refs[i + (size_t)q];
                r.w->u.insert.res[r.i].job_id = REF_JOB(r)->id;
            }
        } else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            for (int q = 0; q < rows; q++) {
                rc = insert_one(b, refs[i + (size_t)q].w, refs[i + (size_t)q].i, what);
                if (rc) return rc;
            }
        } else {
            return *what = "insert jobs", rc;
        }
        i += (size_t)rows;
    }
#undef REF_JOB
    return SQLITE_OK;
}

/* An update's place in a write, for ordering the write by job. */
typedef struct upd_ord {
    uint64_t id;
    size_t i;
} upd_ord;

static int upd_ord_cmp(const void *a, const void *b) {
    const upd_ord *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The stored row against update u: 0 if it may be applied, GX_ESTATE if
 * fenced (a later attempt is stored, or the state is not in from_mask),
 * GX_ENOTFOUND; *rc gets the SQLite error of the lookup, if any. */
static int fence(gx_store_backend *b, const gx_store_update *u, int *rc) {
    sqlite3_stmt *sel = b->sel_job;
    sqlite3_bind_int64(sel, 1, (sqlite3_int64)u->id);
    int s = sqlite3_step(sel);
    int code = GX_ENOTFOUND;
    *rc = SQLITE_OK;
    if (s == SQLITE_ROW) {
        int att = sqlite3_column_int(sel, 0), state = sqlite3_column_int(sel, 1);
        code = att > u->attempt || (u->from_mask && !((1u << state) & u->from_mask)) ? GX_ESTATE : 0;
    } else if (s != SQLITE_DONE) {
        *rc = s;
    }
    sqlite3_reset(sel);
    return code;
}

/* A compare-and-set from a final state to an unfinished one (a re-queue):
 * the job needs its blobs again. */
static int revives(const gx_store_update *u) {
    return u->state < GX__STORE_FIRST_FINAL && (u->from_mask >> GX__STORE_FIRST_FINAL) != 0;
}

/* A revived job's blobs touched as a new job's are (the retention may have
 * doomed them while it was final, or be about to): GX_ENOTFOUND when one
 * is gone or no longer its tenant's, 0 when all are there (or the job is). */
static int touch_revived(gx_store_backend *b, const gx_store_update *u, int *rc) {
    sqlite3_stmt *sel = b->sel_spec;
    sqlite3_bind_int64(sel, 1, (sqlite3_int64)u->id);
    int s = sqlite3_step(sel);
    gx_store_insert_result r = {0};
    *rc = SQLITE_OK;
    if (s == SQLITE_ROW) {
        gx_store_job j = {.id = u->id,
                          .tenant = (const char *)sqlite3_column_text(sel, 0),
                          .spec_json = (const char *)sqlite3_column_text(sel, 1),
                          .submit_ns = u->time_ns};
        *rc = touch_blobs(b, &j, &r);
    } else if (s != SQLITE_DONE) {
        *rc = s;
    }
    sqlite3_reset(sel);
    return r.code;
}

/* Updates are applied job by job (in id order; a job's own updates keep
 * their order). A run of updates of one job with the same attempt and no
 * from_mask is applied as one UPDATE of the row (the last state, every
 * field as the last update that sets it left it, nevents + k, k event
 * lines appended): the same outcome as k UPDATEs, since with equal attempts either
 * all of them pass the fence or none does. The persister hands over every
 * state change of a job at once (scheduled, running, succeeded), so this
 * writes the job row once instead of three times. */
static int w_update(gx_store_backend *b, gx_store_write *w, const char **what) {
    sqlite3_stmt *st = b->upd_job;
    const gx_store_update *ups = w->u.update.ups;
    size_t n = w->u.update.n;
    upd_ord *ord = malloc(n * sizeof *ord);
    if (!ord) return *what = "update (out of memory)", SQLITE_NOMEM;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        ord[i] = (upd_ord){ups[i].id, i};
        if (i && ups[i].id < ups[i - 1].id) sorted = 0;
    }
    if (!sorted) qsort(ord, n, sizeof *ord, upd_ord_cmp);
    int rc = SQLITE_OK;
    for (size_t r = 0; r < n;) {
        const gx_store_update *u = &ups[ord[r].i];
        size_t k = 1;
        while (!u->from_mask && r + k < n && ord[r + k].id == u->id && !ups[ord[r + k].i].from_mask &&
               ups[ord[r + k].i].attempt == u->attempt && ups[ord[r + k - 1].i].state < GX__STORE_FIRST_FINAL)
            k++; /* not past a final state: what follows it is fenced on its own (see the WHERE) */
        const gx_store_update *last = &ups[ord[r + k - 1].i];
        unsigned set = 0;
        int64_t start = 0, end = 0;
        int device = 0, ecode = 0;
        const char *error = NULL, *result = NULL;
        for (size_t j = 0; j < k; j++) {
            const gx_store_update *v = &ups[ord[r + j].i];
            set |= v->set;
            if (v->set & GX_STORE_SET_START) start = v->start_ns;
            if (v->set & GX_STORE_SET_END) end = v->end_ns;
            if (v->set & GX_STORE_SET_DEVICE) device = v->device;
            if (v->set & GX_STORE_SET_ERROR) ecode = v->error_code, error = v->error;
            if (v->set & GX_STORE_SET_RESULT) result = v->result_json;
        }
        int code = 0;
        if (u->from_mask) { /* a compare-and-set: the stored state decides first */
            code = fence(b, u, &rc);
            if (rc) {
                *what = "update lookup";
                goto out;
            }
            if (!code && revives(u)) {
                code = touch_revived(b, u, &rc);
                if (rc) {
                    *what = "blob use";
                    goto out;
                }
            }
        }
        if (!code) {
            b->evs_len = 0;
            for (size_t j = 0; j < k && rc == SQLITE_OK; j++) {
                const gx_store_update *v = &ups[ord[r + j].i];
                int set_err = (v->set & GX_STORE_SET_ERROR) != 0;
                rc = ev_put(b, v->state, v->attempt, v->time_ns, set_err ? v->error_code : 0,
                            set_err ? v->error : NULL);
            }
            if (rc) {
                *what = "job event";
                goto out;
            }
            sqlite3_bind_int64(st, 1, (sqlite3_int64)u->id);
            sqlite3_bind_int(st, 2, last->state);
            sqlite3_bind_int(st, 3, u->attempt);
            sqlite3_bind_int(st, 4, (int)set);
            sqlite3_bind_int64(st, 5, start);
            sqlite3_bind_int64(st, 6, end);
            sqlite3_bind_int(st, 7, device);
            sqlite3_bind_int(st, 8, ecode);
            bind_text(st, 9, error);
            bind_text(st, 10, result);
            sqlite3_bind_int(st, 11, (int)k);
            sqlite3_bind_text(st, 12, b->evs, (int)b->evs_len, SQLITE_STATIC);
            sqlite3_bind_int(st, 13, u->from_mask != 0); /* an end is undone only by a CAS or a newer attempt */
            rc = step_done(st);
            if (rc) {
                *what = "update job";
                goto out;
            }
            if (sqlite3_changes(b->w) == 0) { /* fenced, or no such job */
                code = fence(b, u, &rc);
                if (!code) code = GX_ESTATE;
                if (rc) {
                    *what = "update lookup";
                    goto out;
                }
            } else if (b->ckpt_rows && last->state >= GX__STORE_FIRST_FINAL) {
                sqlite3_bind_int64(b->ckpt_del, 1, (sqlite3_int64)u->id);
                rc = step_done(b->ckpt_del);
                if (rc) {
                    *what = "delete checkpoint";
                    goto out;
                }
            }
        }
        if (w->u.update.codes)
            for (size_t j = 0; j < k; j++) w->u.update.codes[ord[r + j].i] = code;
        r += k;
    }
    rc = SQLITE_OK;
out:
    free(ord);
    return rc;
}

static int w_tenant(gx_store_backend *b, gx_store_write *w) {
    sqlite3_stmt *st = b->tenant_up;
    const gx_store_tenant *t = w->u.tenant.t;
    bind_text(st, 1, t->name);
    sqlite3_bind_double(st, 2, t->weight);
    sqlite3_bind_int(st, 3, t->max_running);
    bind_text(st, 4, t->quotas_json);
    sqlite3_bind_int64(st, 5, w->u.tenant.now_ns);
    return step_done(st);
}

static int w_blob(gx_store_backend *b, gx_store_write *w) {
    sqlite3_stmt *st = b->blob_ins;
    bind_text(st, 1, w->u.blob.id);
    sqlite3_bind_int64(st, 2, w->u.blob.size);
    sqlite3_bind_int64(st, 3, w->u.blob.now_ns);
    int rc = step_done(st);
    if (rc) return rc;
    st = b->owner_ins;
    bind_text(st, 1, w->u.blob.tenant);
    bind_text(st, 2, w->u.blob.id);
    sqlite3_bind_int64(st, 3, w->u.blob.now_ns);
    return step_done(st);
}

static int w_requeue(gx_store_backend *b, gx_store_write *w) {
    sqlite3_bind_int64(b->rq_jobs, 1, w->u.requeue.now_ns);
    int rc = step_done(b->rq_jobs);
    if (rc == SQLITE_OK) w->u.requeue.count = sqlite3_changes64(b->w);
    return rc;
}

/* Injected store faults (gexec_fault.h), checked with every write of the
 * group done and the transaction still open, so an injected failure takes
 * the same way out as a real one: ROLLBACK and GX_ESTORE for the whole
 * group. store.slow sleeps first (a slow fsync); store.full answers as
 * SQLite does on ENOSPC; store.commit fails with the armed code. */
static int fault_before_commit(gx_error *err) {
    gx_fault_spec f;
    if (gx_fault_take(GX_FAULT_STORE_SLOW, -1, &f) && f.delay_us > 0) {
        struct timespec ts = {.tv_sec = f.delay_us / 1000000, .tv_nsec = (f.delay_us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    if (gx_fault_take(GX_FAULT_STORE_FULL, -1, NULL))
        return gx_error_set(err, GX_ESTORE, NULL,
                            "sqlite: database or disk is full (commit, code %d; injected ENOSPC)", SQLITE_FULL);
    if (gx_fault_take(GX_FAULT_STORE_COMMIT, -1, &f))
        return gx_error_set(err, f.code < 0 ? f.code : GX_ESTORE, NULL,
                            "sqlite: commit failed (injected fault store.commit)");
    return 0;
}

static int w_checkpoint(gx_store_backend *b, gx_store_write *w) {
    sqlite3_stmt *st = b->ckpt_put;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)w->u.checkpoint.job_id);
    sqlite3_bind_int(st, 2, w->u.checkpoint.attempt);
    sqlite3_bind_int64(st, 3, w->u.checkpoint.step);
    sqlite3_bind_int64(st, 4, w->u.checkpoint.now_ns);
    sqlite3_bind_blob(st, 5, w->u.checkpoint.bytes, (int)w->u.checkpoint.len, SQLITE_STATIC);
    int rc = step_done(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_OK) {
        w->u.checkpoint.stored = sqlite3_changes(b->w) > 0;
        b->ckpt_rows |= w->u.checkpoint.stored;
    }
    return rc;
}

static int w_setting(gx_store_backend *b, gx_store_write *w) {
    int rc = SQLITE_OK;
    for (size_t k = 0; k < w->u.setting.n && rc == SQLITE_OK; k++) {
        const char *v = w->u.setting.values[k];
        sqlite3_stmt *st = v ? b->set_put : b->set_del;
        bind_text(st, 1, w->u.setting.keys[k]);
        if (v) {
            bind_text(st, 2, v);
            sqlite3_bind_int64(st, 3, w->u.setting.now_ns);
        }
        rc = step_done(st);
        sqlite3_clear_bindings(st);
    }
    return rc;
}

/* ---- retention ------------------------------------------------------------ */

/* Finished jobs that ended before the cutoff, in id order from after,
 * deleted. Ids grow with submission time and a job ends after it was
 * submitted, so the scan stops once it meets jobs submitted after the
 * cutoff: 256 in a row, so that a few stamped by a clock that was ahead
 * for a while (then set back) do not hold up everything after them. */
#define PURGE_STOP_RUN 256
static int purge_jobs(gx_store_backend *b, gx_store_write *w) {
    int64_t cut = w->u.purge.jobs_before_ns;
    size_t max = w->u.purge.max_jobs, cap = 0, n = 0, seen = 0, later = 0;
    uint64_t *ids = NULL;
    sqlite3_stmt *st = b->pg_scan;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)w->u.purge.after);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        int state = sqlite3_column_int(st, 1);
        int64_t end = sqlite3_column_int64(st, 2), sub = sqlite3_column_int64(st, 3);
        if (sub >= cut) {
            if (++later >= PURGE_STOP_RUN) break;
            continue; /* not after: the next cycle looks again from before it */
        }
        later = 0;
        w->u.purge.after = id;
        if (state >= GX__STORE_FIRST_FINAL && end < cut) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                uint64_t *ni = realloc(ids, nc * sizeof *ni);
                if (!ni) {
                    rc = SQLITE_NOMEM;
                    break;
                }
                ids = ni;
                cap = nc;
            }
            ids[n++] = id;
        }
        /* bounded work per transaction, kept jobs (unfinished, or ended
         * after the cutoff) counted too */
        if (n >= max || ++seen >= 8 * max) {
            w->u.purge.more = 1;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        sqlite3_stmt *del[] = {b->pg_job, b->pg_jev, b->ckpt_del};
        for (size_t d = 0; d < 3 && rc == SQLITE_OK; d++) {
            if (del[d] == b->ckpt_del && !b->ckpt_rows) continue;
            sqlite3_bind_int64(del[d], 1, (sqlite3_int64)ids[i]);
            rc = step_done(del[d]);
        }
    }
    if (rc == SQLITE_OK && n) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)ids[n - 1]);
        sqlite3_bind_text(b->pg_maxdel, 1, v, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(b->pg_maxdel, 2, w->u.purge.now_ns);
        rc = step_done(b->pg_maxdel);
        sqlite3_clear_bindings(b->pg_maxdel);
    }
    if (rc == SQLITE_OK) w->u.purge.jobs = (int64_t)n;
    free(ids);
    return rc;
}

/* Rows of blobs doomed before the cutoff and not used since, deleted;
 * their ids to w->u.purge.gone for the front to remove the files. */
static int purge_doomed(gx_store_backend *b, gx_store_write *w) {
    sqlite3_stmt *st = b->pg_doomed;
    sqlite3_bind_int64(st, 1, w->u.purge.doomed_before_ns);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (!id || !gx_store_blob_id_valid(id)) continue;
        if (w->u.purge.ngone == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char(*ng)[GX_STORE_BLOB_ID_LEN] = realloc(w->u.purge.gone, nc * sizeof *ng);
            if (!ng) {
                rc = SQLITE_NOMEM;
                break;
            }
            w->u.purge.gone = ng;
            cap = nc;
        }
        memcpy(w->u.purge.gone[w->u.purge.ngone++], id, GX_STORE_BLOB_ID_LEN);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    for (size_t i = 0; i < w->u.purge.ngone && rc == SQLITE_OK; i++) {
        bind_text(b->pg_blob, 1, w->u.purge.gone[i]);
        rc = step_done(b->pg_blob);
        if (rc == SQLITE_OK) {
            bind_text(b->pg_owner, 1, w->u.purge.gone[i]);
            rc = step_done(b->pg_owner);
        }
    }
    sqlite3_clear_bindings(b->pg_blob);
    sqlite3_clear_bindings(b->pg_owner);
    return rc;
}

/* The candidates blob_candidates found: one an unfinished job named counts
 * as used now (so that it leaves the head of the candidates: with 4,096
 * such, no other blob was ever doomed); the others are doomed unless used
 * since they were found. */
static int purge_doom(gx_store_backend *b, gx_store_write *w) {
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < w->u.purge.ncand; i++) {
        const gx_store_blob_cand *c = &w->u.purge.cand[i];
        int named = c->named;
        sqlite3_stmt *st = named ? b->pg_keep : b->pg_doom;
        bind_text(st, 1, c->id);
        sqlite3_bind_int64(st, 2, w->u.purge.now_ns);
        if (!named) sqlite3_bind_int64(st, 3, c->used_ns);
        rc = step_done(st);
        if (rc == SQLITE_OK && !named) w->u.purge.doomed += sqlite3_changes(b->w);
        sqlite3_clear_bindings(st);
    }
    return rc;
}

static int w_purge(gx_store_backend *b, gx_store_write *w, const char **what) {
    int rc = SQLITE_OK;
    if (w->u.purge.jobs_before_ns > 0) {
        *what = "retention (jobs)";
        rc = purge_jobs(b, w);
    }
    if (rc == SQLITE_OK && w->u.purge.doomed_before_ns > 0) {
        *what = "retention (blob rows)";
        rc = purge_doomed(b, w);
    }
    if (rc == SQLITE_OK && w->u.purge.blobs_before_ns > 0) {
        *what = "retention (unused blobs)";
        rc = purge_doom(b, w);
    }
    return rc;
}

static int sqlite_write_group(gx_store_backend *b, gx_store_write *const *ws, size_t n,
                              gx_error *err) {
    const char *what = "begin";
    int rc = step_done(b->begin);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        gx_store_write *w = ws[i];
        switch (w->kind) {
        case GX_STORE_W_INSERT: {
            size_t run = 1; /* with the insert writes that follow it */
            while (i + run < n && ws[i + run]->kind == GX_STORE_W_INSERT) run++;
            rc = w_insert(b, ws + i, run, &what);
            i += run - 1;
            break;
        }
        case GX_STORE_W_UPDATE:
            rc = w_update(b, w, &what);
            break;
        case GX_STORE_W_TENANT:
            what = "upsert tenant";
            rc = w_tenant(b, w);
            break;
        case GX_STORE_W_BLOB:
            what = "blob metadata";
            rc = w_blob(b, w);
            break;
        case GX_STORE_W_REQUEUE:
            what = "requeue";
            rc = w_requeue(b, w);
            break;
        case GX_STORE_W_CHECKPOINT:
            what = "checkpoint";
            rc = w_checkpoint(b, w);
            break;
        case GX_STORE_W_SETTING:
            what = "setting";
            rc = w_setting(b, w);
            break;
        case GX_STORE_W_PURGE:
            rc = w_purge(b, w, &what);
            break;
        default:
            break;
        }
    }
    if (rc == SQLITE_OK) {
        int frc = fault_before_commit(err);
        if (frc) {
            step_done(b->rollback);
            return frc;
        }
        what = "commit";
        rc = step_done(b->commit);
        if (rc == SQLITE_OK) return 0;
    }
    db_err(err, b->w, rc, what);
    /* Some errors (full, I/O) already rolled back; ROLLBACK then only
     * complains, harmlessly. */
    if (!sqlite3_get_autocommit(b->w)) step_done(b->rollback);
    return GX_ESTORE;
}

/* ---- reads -------------------------------------------------------------------- */

static const char *ctext(sqlite3_stmt *st, int i, gx__rb *rb) {
    const char *p = (const char *)sqlite3_column_text(st, i);
    if (!p || !rb) return p;
    return gx__rb_str(rb, p, (size_t)sqlite3_column_bytes(st, i));
}

/* A row of JOB_COLS into j; strings copied into rb, or borrowed if NULL. */
static void row_job(sqlite3_stmt *st, gx_store_job *j, gx__rb *rb) {
    j->id = (uint64_t)sqlite3_column_int64(st, 0);
    j->tenant = ctext(st, 1, rb);
    j->kernel = ctext(st, 2, rb);
    j->spec_json = ctext(st, 3, rb);
    j->state = sqlite3_column_int(st, 4);
    j->attempt = sqlite3_column_int(st, 5);
    j->priority = sqlite3_column_int(st, 6);
    j->submit_ns = sqlite3_column_int64(st, 7);
    j->start_ns = sqlite3_column_int64(st, 8);
    j->end_ns = sqlite3_column_int64(st, 9);
    j->device = sqlite3_column_int(st, 10);
    j->error_code = sqlite3_column_int(st, 11);
    j->error = ctext(st, 12, rb);
    j->idempotency_key = ctext(st, 13, rb);
    j->labels_json = ctext(st, 14, rb);
    j->result_json = ctext(st, 15, rb);
}

/* Rows of st (already bound) into a block via rb; 0 or GX_ESTORE. */
static int collect(sqlite3 *db, sqlite3_stmt *st, gx__rb *rb,
                   void (*row)(sqlite3_stmt *, void *, gx__rb *), size_t max, gx_error *err) {
    int rc = SQLITE_DONE;
    while (rb->n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *it = gx__rb_add(rb);
        if (!it) break;
        row(st, it, rb);
    }
    if (rb->n < max && !rb->oom && rc != SQLITE_DONE) {
        db_err(err, db, rc, "read");
        done(st);
        return GX_ESTORE;
    }
    done(st);
    return 0;
}

static void row_job_v(sqlite3_stmt *st, void *it, gx__rb *rb) { row_job(st, it, rb); }

static void row_event(sqlite3_stmt *st, void *it, gx__rb *rb) {
    gx_store_event *e = it;
    e->job_id = (uint64_t)sqlite3_column_int64(st, 0);
    e->seq = sqlite3_column_int(st, 1);
    e->state = sqlite3_column_int(st, 2);
    e->attempt = sqlite3_column_int(st, 3);
    e->time_ns = sqlite3_column_int64(st, 4);
    e->error_code = sqlite3_column_int(st, 5);
    e->error = ctext(st, 6, rb);
}

static void row_tenant(sqlite3_stmt *st, void *it, gx__rb *rb) {
    gx_store_tenant *t = it;
    t->name = ctext(st, 0, rb);
    t->weight = sqlite3_column_double(st, 1);
    t->max_running = sqlite3_column_int(st, 2);
    t->quotas_json = ctext(st, 3, rb);
    t->created_ns = sqlite3_column_int64(st, 4);
    t->updated_ns = sqlite3_column_int64(st, 5);
}

static int finish(gx__rb *rb, void **out, size_t *n, void (*fix)(void *, char *), int rc,
                  gx_error *err) {
    if (rc) {
        gx__rb_free(rb);
        return rc;
    }
    rc = gx__rb_finish(rb, out, n, fix);
    if (rc) return gx_error_set(err, rc, NULL, "out of memory");
    return 0;
}

static int sqlite_get_job(gx_store_backend *b, uint64_t id, gx_store_job **out, gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->get_job, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_job));
    if (rc == 0) {
        sqlite3_bind_int64(c->get_job, 1, (sqlite3_int64)id);
        rc = collect(c->db, c->get_job, &rb, row_job_v, 1, err);
    }
    rc_put(b, c);
    size_t n = 0;
    rc = finish(&rb, (void **)out, &n, gx__fix_job, rc, err);
    if (rc == 0 && n == 0)
        return gx_error_set(err, GX_ENOTFOUND, "id", "job %llu not found", (unsigned long long)id);
    return rc;
}

/* The SQL of one list variant. */
/* Filters no index serves (a state among finished ones, kernel, label)
 * are tested row by row along the tenant's jobs in id order: for a filter
 * that matches little, a page could read a tenant's whole history while it
 * holds an HTTP thread. Such a listing reads at most LIST_SCAN_ROWS rows
 * (or limit + 1) and answers what it found with a cursor where it stopped:
 * the page may hold fewer jobs than asked, even none, and the caller goes
 * on from the cursor. */
#define LIST_SCAN_ROWS 20000
#define L_ROW_FILTERS (L_STATE | L_KEXACT | L_KNAME | L_LABEL)

static void list_sql(unsigned v, char *sql, size_t cap) {
    /* the row filters as one expression: in WHERE, or (scanning) as the
     * last column, so that every row read comes back and counts */
    char pred[512] = "1";
    int p = 1;
    /* unfinished states: along the partial index of unfinished jobs (all
     * tenants'), every one read counting; the tenant's own index would
     * pass over its whole finished history uncounted */
    if ((v & L_UNFIN) && (v & L_TENANT)) p += snprintf(pred + p, sizeof pred - (size_t)p, " AND tenant = ?2");
    if (v & L_STATE) p += snprintf(pred + p, sizeof pred - (size_t)p, " AND ((1 << state) & ?3) != 0");
    if (v & L_KEXACT) p += snprintf(pred + p, sizeof pred - (size_t)p, " AND kernel = ?4");
    if (v & L_KNAME)
        p += snprintf(pred + p, sizeof pred - (size_t)p,
                      " AND (kernel = ?4 OR substr(kernel, 1, length(?4) + 1) = ?4 || '@')");
    if (v & L_LABEL)
        snprintf(pred + p, sizeof pred - (size_t)p,
                 " AND CASE WHEN json_valid(labels) THEN EXISTS (SELECT 1 FROM"
                 " json_each(labels) WHERE key = ?5 AND value = ?6) ELSE 0 END");
    /* newest first reads the same index backwards (the id range bounds
     * it from above): no sort, the same rows counted */
    int n = snprintf(sql, cap, "SELECT " JOB_COLS ", (%s) FROM jobs%s WHERE id > ?1%s", pred,
                     v & L_UNFIN ? " INDEXED BY jobs_unfinished" : "", v & L_DESC ? " AND id < ?8" : "");
    if ((v & L_TENANT) && !(v & L_UNFIN)) n += snprintf(sql + n, cap - (size_t)n, " AND tenant = ?2");
    if (v & L_UNFIN) n += snprintf(sql + n, cap - (size_t)n, " AND state < " FINAL_SQL);
    snprintf(sql + n, cap - (size_t)n, " ORDER BY id%s LIMIT ?7", v & L_DESC ? " DESC" : "");
}

static unsigned list_variant(const gx_store_filter *f) {
    unsigned v = 0;
    if (f->tenant) v |= L_TENANT;
    if (f->state_mask) v |= L_STATE;
    if (f->state_mask && !(f->state_mask >> GX__STORE_FIRST_FINAL)) v |= L_UNFIN;
    if (f->kernel) v |= strchr(f->kernel, '@') ? L_KEXACT : L_KNAME;
    if (f->label_key) v |= L_LABEL;
    if (f->desc) v |= L_DESC;
    return v;
}

void gx__sqlite_list_sql(const gx_store_filter *f, char *sql, size_t cap) {
    list_sql(list_variant(f), sql, cap);
}

static int sqlite_list_jobs(gx_store_backend *b, const gx_store_filter *f, gx_store_job **jobs,
                            size_t *n, uint64_t *next, gx_error *err) {
    unsigned v = list_variant(f);
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    char sql[1024];
    list_sql(v, sql, sizeof sql);
    int rc = prep(c->db, &c->list[v], sql, err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_job));
    size_t want = f->limit + 1; /* one more: is there a next page? */
    size_t budget = v & L_ROW_FILTERS ? (want > LIST_SCAN_ROWS ? want : LIST_SCAN_ROWS) : want;
    uint64_t last = 0; /* the last row read */
    size_t seen = 0;
    if (rc == 0) {
        sqlite3_stmt *st = c->list[v];
        sqlite3_bind_int64(st, 1, (sqlite3_int64)f->after);
        bind_text(st, 2, f->tenant);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)f->state_mask);
        bind_text(st, 4, f->kernel);
        bind_text(st, 5, f->label_key);
        bind_text(st, 6, f->label_value);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)budget);
        if (v & L_DESC) sqlite3_bind_int64(st, 8, f->before ? (sqlite3_int64)f->before : INT64_MAX);
        int s = SQLITE_DONE;
        while (rb.n < want && (s = sqlite3_step(st)) == SQLITE_ROW) {
            seen++;
            last = (uint64_t)sqlite3_column_int64(st, 0);
            if (!sqlite3_column_int(st, 16)) continue;
            void *it = gx__rb_add(&rb);
            if (!it) break;
            row_job(st, it, &rb);
        }
        if (rb.n < want && !rb.oom && s != SQLITE_DONE && s != SQLITE_ROW) {
            db_err(err, c->db, s, "read");
            rc = GX_ESTORE;
        }
        done(st);
    }
    rc_put(b, c);
    int more = rc == 0 && !rb.oom && rb.n > f->limit;
    if (more) rb.n = f->limit;
    rc = finish(&rb, (void **)jobs, n, gx__fix_job, rc, err);
    if (rc == 0 && more) *next = (*jobs)[*n - 1].id;
    else if (rc == 0 && seen == budget) *next = last; /* stopped reading: go on from there */
    return rc;
}

static int sqlite_job_events(gx_store_backend *b, uint64_t id, gx_store_event **ev, size_t *n,
                             gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    /* rows written before schema 3 first, then the row's own lines, read in
     * one transaction so that they agree */
    int rc = exec(c->db, "BEGIN", err);
    if (rc == 0)
        rc = prep(c->db, &c->events,
                  "SELECT job_id, seq, state, attempt, time_ns, error_code, error"
                  " FROM job_events WHERE job_id = ?1 ORDER BY seq",
                  err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_event));
    if (rc == 0) {
        sqlite3_bind_int64(c->events, 1, (sqlite3_int64)id);
        rc = collect(c->db, c->events, &rb, row_event, SIZE_MAX, err);
    }
    int found = 0;
    if (rc == 0) rc = prep(c->db, &c->job_ev, "SELECT ev FROM jobs WHERE id = ?1", err);
    if (rc == 0) {
        sqlite3_bind_int64(c->job_ev, 1, (sqlite3_int64)id);
        int s = sqlite3_step(c->job_ev);
        if (s == SQLITE_ROW) {
            found = 1;
            const char *p = (const char *)sqlite3_column_text(c->job_ev, 0);
            if (p) rc = ev_parse(p, (size_t)sqlite3_column_bytes(c->job_ev, 0), id, (int)rb.n, &rb, err);
        } else if (s != SQLITE_DONE) {
            rc = db_err(err, c->db, s, "read");
        }
        done(c->job_ev);
    }
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    rc_put(b, c);
    rc = finish(&rb, (void **)ev, n, gx__fix_event, rc, err);
    if (rc == 0 && !found) {
        gx_store_free(*ev);
        *ev = NULL;
        *n = 0;
        return gx_error_set(err, GX_ENOTFOUND, "id", "job %llu not found", (unsigned long long)id);
    }
    return rc;
}

static int sqlite_max_job_id(gx_store_backend *b, uint64_t *out, gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->max_id,
                  "SELECT max(coalesce((SELECT max(id) FROM jobs), 0),"
                  " coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = '" MAXDEL_KEY "'), 0))",
                  err);
    if (rc == 0) {
        int s = sqlite3_step(c->max_id);
        if (s == SQLITE_ROW)
            *out = (uint64_t)sqlite3_column_int64(c->max_id, 0);
        else
            rc = db_err(err, c->db, s, "max job id");
        done(c->max_id);
    }
    rc_put(b, c);
    return rc;
}

static int sqlite_scan_unfinished(gx_store_backend *b, gx_store_job_fn fn, void *ctx,
                                  gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->unfinished,
                  "SELECT " JOB_COLS " FROM jobs WHERE state < " FINAL_SQL " ORDER BY id", err);
    if (rc == 0) {
        sqlite3_stmt *st = c->unfinished;
        int s;
        gx_store_job j;
        while ((s = sqlite3_step(st)) == SQLITE_ROW) {
            row_job(st, &j, NULL);
            rc = fn(ctx, &j);
            if (rc) break;
        }
        if (!rc && s != SQLITE_DONE) rc = db_err(err, c->db, s, "load unfinished jobs");
        done(st);
    }
    rc_put(b, c);
    return rc;
}

static int sqlite_tenant_get(gx_store_backend *b, const char *name, gx_store_tenant **out,
                             gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->tenant_get,
                  "SELECT name, weight, max_running, quotas, created_ns, updated_ns"
                  " FROM tenants WHERE name = ?1",
                  err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_tenant));
    if (rc == 0) {
        bind_text(c->tenant_get, 1, name);
        rc = collect(c->db, c->tenant_get, &rb, row_tenant, 1, err);
    }
    rc_put(b, c);
    size_t n = 0;
    rc = finish(&rb, (void **)out, &n, gx__fix_tenant, rc, err);
    if (rc == 0 && n == 0)
        return gx_error_set(err, GX_ENOTFOUND, "name", "tenant %s not found", name);
    return rc;
}

static int sqlite_tenant_list(gx_store_backend *b, gx_store_tenant **out, size_t *n,
                              gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->tenant_list,
                  "SELECT name, weight, max_running, quotas, created_ns, updated_ns"
                  " FROM tenants ORDER BY name",
                  err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_tenant));
    if (rc == 0) rc = collect(c->db, c->tenant_list, &rb, row_tenant, SIZE_MAX, err);
    rc_put(b, c);
    return finish(&rb, (void **)out, n, gx__fix_tenant, rc, err);
}

static void row_setting(sqlite3_stmt *st, void *it, gx__rb *rb) {
    gx_store_setting *t = it;
    t->key = ctext(st, 0, rb);
    t->value = ctext(st, 1, rb);
    t->updated_ns = sqlite3_column_int64(st, 2);
}

static int sqlite_settings_get(gx_store_backend *b, const char *prefix, gx_store_setting **out, size_t *n,
                               gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    /* a range on the key (no LIKE: '%' and '_' in a prefix are literal) */
    int rc = prep(c->db, &c->settings,
                  "SELECT key, value, updated_ns FROM settings"
                  " WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 ORDER BY key",
                  err);
    gx__rb rb;
    gx__rb_init(&rb, sizeof(gx_store_setting));
    if (rc == 0) {
        bind_text(c->settings, 1, prefix);
        rc = collect(c->db, c->settings, &rb, row_setting, SIZE_MAX, err);
    }
    rc_put(b, c);
    return finish(&rb, (void **)out, n, gx__fix_setting, rc, err);
}

static int sqlite_find_idempotent(gx_store_backend *b, const char *tenant, const char *key, uint64_t *id,
                                  gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->find_idem, "SELECT id FROM jobs WHERE tenant = ?1 AND idem_key = ?2", err);
    int found = 0;
    if (rc == 0) {
        bind_text(c->find_idem, 1, tenant);
        bind_text(c->find_idem, 2, key);
        int st = sqlite3_step(c->find_idem);
        if (st == SQLITE_ROW) {
            found = 1;
            *id = (uint64_t)sqlite3_column_int64(c->find_idem, 0);
        } else if (st != SQLITE_DONE) {
            rc = db_err(err, c->db, st, "idempotency lookup");
        }
        done(c->find_idem);
    }
    rc_put(b, c);
    if (rc == 0 && !found) return gx_error_set(err, GX_ENOTFOUND, "idempotency_key", "no job with that key");
    return rc;
}

/* blob_candidates: the candidates by id (value: index + 1). */
typedef struct cand_set {
    gx__hmap ix;
    gx_store_blob_cand *c;
} cand_set;

static int mark_named(void *ctx, const char *id) {
    cand_set *cs = ctx;
    uint64_t v;
    if (gx__hmap_get(&cs->ix, id, strlen(id), &v)) cs->c[v - 1].named = 1;
    return 0;
}

static int sqlite_blob_candidates(gx_store_backend *b, int64_t before_ns, size_t max, gx_store_blob_cand **out,
                                  size_t *n, gx_error *err) {
    *out = NULL;
    *n = 0;
    if (!max) return 0;
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->bl_cand,
                  "SELECT id, used_ns FROM blobs WHERE used_ns < ?1 AND doomed_ns = 0 ORDER BY used_ns LIMIT ?2",
                  err);
    if (!rc)
        rc = prep(c->db, &c->bl_unfin,
                  "SELECT spec FROM jobs WHERE state < " FINAL_SQL " AND instr(spec, '\"blob\"') > 0", err);
    cand_set cs = {{0}, rc ? NULL : calloc(max, sizeof *cs.c)};
    if (!rc && !cs.c) rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    size_t k = 0;
    if (!rc) {
        sqlite3_bind_int64(c->bl_cand, 1, before_ns);
        sqlite3_bind_int64(c->bl_cand, 2, (sqlite3_int64)max);
        int st = SQLITE_DONE;
        while (!rc && (st = sqlite3_step(c->bl_cand)) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(c->bl_cand, 0);
            if (!id || !gx_store_blob_id_valid(id) || k == max) continue;
            memcpy(cs.c[k].id, id, GX_STORE_BLOB_ID_LEN);
            cs.c[k].used_ns = sqlite3_column_int64(c->bl_cand, 1);
            if (gx__hmap_put(&cs.ix, cs.c[k].id, strlen(cs.c[k].id), k + 1))
                rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
            k++;
        }
        if (!rc && st != SQLITE_DONE) rc = db_err(err, c->db, st, "blob candidates");
        done(c->bl_cand);
    }
    if (!rc && k) { /* those an unfinished job names are in use */
        int st;
        while ((st = sqlite3_step(c->bl_unfin)) == SQLITE_ROW)
            gx__spec_blob_refs((const char *)sqlite3_column_text(c->bl_unfin, 0), mark_named, &cs);
        if (st != SQLITE_DONE) rc = db_err(err, c->db, st, "blob candidates (unfinished jobs)");
        done(c->bl_unfin);
    }
    rc_put(b, c);
    gx__hmap_free(&cs.ix);
    if (rc || !k) {
        free(cs.c);
        return rc;
    }
    *out = cs.c;
    *n = k;
    return 0;
}

static int sqlite_blob_owned(gx_store_backend *b, const char *tenant, const char *id,
                             int64_t *size, gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->blob_owned,
                  "SELECT b.size FROM blobs b WHERE b.id = ?2 AND (?1 IS NULL OR EXISTS"
                  " (SELECT 1 FROM blob_owners o WHERE o.tenant = ?1 AND o.id = ?2))",
                  err);
    int found = 0;
    if (rc == 0) {
        bind_text(c->blob_owned, 1, tenant);
        bind_text(c->blob_owned, 2, id);
        int s = sqlite3_step(c->blob_owned);
        if (s == SQLITE_ROW) {
            found = 1;
            *size = sqlite3_column_int64(c->blob_owned, 0);
        } else if (s != SQLITE_DONE) {
            rc = db_err(err, c->db, s, "blob lookup");
        }
        done(c->blob_owned);
    }
    rc_put(b, c);
    if (rc == 0 && !found) return gx_error_set(err, GX_ENOTFOUND, "blob", "blob %s not found", id);
    return rc;
}

static int sqlite_checkpoint_get(gx_store_backend *b, uint64_t job_id, int *attempt, int64_t *step,
                                 void **bytes, size_t *len, gx_error *err) {
    rconn *c = rc_get(b, err);
    if (!c) return err ? err->code : GX_ESTORE;
    int rc = prep(c->db, &c->ckpt_get, "SELECT attempt, step, state FROM checkpoints WHERE job_id = ?1", err);
    int found = 0;
    if (rc == 0) {
        sqlite3_stmt *st = c->ckpt_get;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)job_id);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            found = 1;
            *attempt = sqlite3_column_int(st, 0);
            *step = sqlite3_column_int64(st, 1);
            const void *p = sqlite3_column_blob(st, 2);
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            *bytes = malloc(n ? n : 1);
            if (!*bytes)
                rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
            else {
                if (n) memcpy(*bytes, p, n);
                *len = n;
            }
        } else if (s != SQLITE_DONE) {
            rc = db_err(err, c->db, s, "checkpoint lookup");
        }
        done(st);
    }
    rc_put(b, c);
    if (rc == 0 && !found)
        return gx_error_set(err, GX_ENOTFOUND, "id", "no checkpoint of job %llu", (unsigned long long)job_id);
    return rc;
}

static int sqlite_check(gx_store_backend *b, char *msg, size_t cap) {
    gx_error err;
    gx_error_clear(&err);
    rconn *c = rc_get(b, &err);
    if (!c) {
        snprintf(msg, cap, "%s", err.message);
        return GX_ESTORE;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check(20)", -1, &st, NULL);
    size_t len = 0;
    int ok = 0, rows = 0, s = rc;
    if (rc == SQLITE_OK) {
        while ((s = sqlite3_step(st)) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            if (!t) continue;
            if (rows++ == 0 && strcmp(t, "ok") == 0) ok = 1;
            if (len + 2 < cap) len += (size_t)snprintf(msg + len, cap - len, "%s%s", len ? "; " : "", t);
            if (len >= cap) len = cap - 1;
        }
    }
    if (s != SQLITE_DONE) {
        snprintf(msg, cap, "sqlite: %s", sqlite3_errmsg(c->db));
        ok = 0;
    }
    sqlite3_finalize(st);
    rc_put(b, c);
    return ok && rows == 1 ? 0 : GX_ESTORE;
}

const gx_store_ops gx_store_sqlite_ops = {
    .abi_version = GX_STORE_ABI_VERSION,
    .struct_size = sizeof(gx_store_ops),
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .write_group = sqlite_write_group,
    .get_job = sqlite_get_job,
    .list_jobs = sqlite_list_jobs,
    .job_events = sqlite_job_events,
    .max_job_id = sqlite_max_job_id,
    .scan_unfinished = sqlite_scan_unfinished,
    .tenant_get = sqlite_tenant_get,
    .tenant_list = sqlite_tenant_list,
    .blob_owned = sqlite_blob_owned,
    .check = sqlite_check,
    .checkpoint_get = sqlite_checkpoint_get,
    .settings_get = sqlite_settings_get,
    .find_idempotent = sqlite_find_idempotent,
    .blob_candidates = sqlite_blob_candidates,
};
