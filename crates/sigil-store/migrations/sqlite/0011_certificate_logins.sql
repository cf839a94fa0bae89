-- When each device last logged in with its certificate (to within an
-- hour: a login writes only when the recorded time is older). Goes with
-- its device.
CREATE TABLE certificate_logins (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (owner, name),
    FOREIGN KEY (owner, name) REFERENCES certificates (owner, name) ON DELETE CASCADE
) STRICT;
