-- The playlist workflow (sql/playlist.sql) runs end to end and keeps telling the same story.
.read sql/playlist.sql
