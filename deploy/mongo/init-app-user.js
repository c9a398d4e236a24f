// Run once by the official mongo image on first start (docker-entrypoint-initdb.d), as the root user
// of MONGO_INITDB_ROOT_USERNAME: creates the services' own user, readWrite on their database only
// (transactions and indexes included; no admin or cluster roles). Names and password from the
// environment of the mongo service in docker-compose.yml.
const dbName = process.env.MONGO_APP_DB;
const user = process.env.MONGO_APP_USERNAME;
const pwd = process.env.MONGO_APP_PASSWORD;
if (!dbName || !user || !pwd) {
  throw new Error("MONGO_APP_DB, MONGO_APP_USERNAME and MONGO_APP_PASSWORD are required");
}
db.getSiblingDB(dbName).createUser({ user, pwd, roles: [{ role: "readWrite", db: dbName }] });
print(`created user ${user} (readWrite on ${dbName})`);
