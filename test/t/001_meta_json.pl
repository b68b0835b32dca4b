# META.json against the PGXN meta spec 1.0.0 (https://pgxn.org/meta/spec.txt):
# required keys and their types, semantic versions, known license and phase
# names, files that exist, and a version derived from the one place it is
# kept, stockx_enrich.control (1.1 there is 1.1.0 here).  Also: PGXN's
# resources and maintainer, the full install script of the current version
# in provides, `make dist`'s zip holding what META.json names, and every
# statement of the supported PostgreSQL majors agreeing with the one list,
# test/matrix/versions (control file, META.json, README, debian/pgversions,
# and the Makefile's refusal of older majors).
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Uncompress::Unzip qw($UnzipError);
use JSON::PP;
use Test::More;

my $top = dirname(dirname(dirname(__FILE__)));
$top = "$ENV{TESTDIR}/.." if !-f "$top/META.json" && $ENV{TESTDIR};
sub slurp
{
	open my $fh, '<', $_[0] or die "$_[0]: $!";
	local $/;
	return <$fh>;
}

my $meta = eval { JSON::PP->new->decode(slurp("$top/META.json")) };
if (!ok($meta && ref $meta eq 'HASH', 'META.json is a JSON object'))
{
	diag($@ // 'not an object');
	done_testing();
	exit 1;
}

my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$/;
my %known_top = map { $_ => 1 } qw(name version abstract maintainer license provides meta-spec
  description generated_by tags no_index prereqs release_status resources);

for my $key (qw(name version abstract maintainer license provides meta-spec))
{
	ok(exists $meta->{$key}, "required key $key is present");
}
my @unknown = grep { !$known_top{$_} && !/^x_/i } keys %$meta;
is_deeply(\@unknown, [], 'no key outside the spec (custom keys start with x_)');

like($meta->{name}, qr/^[A-Za-z][A-Za-z0-9_-]+$/, 'name is a valid distribution name');
like($meta->{version}, $semver, "version $meta->{version} is a semantic version");
ok(!ref $meta->{abstract} && length $meta->{abstract}, 'abstract is a non-empty string');
my @maint = ref $meta->{maintainer} ? @{ $meta->{maintainer} } : ($meta->{maintainer});
ok(@maint && !grep({ ref $_ || !length $_ } @maint), 'maintainer is a string or a list of strings');
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd
  freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
  openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source restricted unrestricted unknown);
my @lic = ref $meta->{license} eq 'ARRAY' ? @{ $meta->{license} } : ($meta->{license});
ok(!grep({ ref $_ || !$licenses{$_} } @lic), 'license is one of the spec\'s license names');
is($meta->{license}, 'postgresql', 'and it is the PostgreSQL License');
ok(-f "$top/LICENSE", 'a LICENSE file is shipped');

is(ref $meta->{'meta-spec'}, 'HASH', 'meta-spec is an object');
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version is 1.0.0');

is(ref $meta->{provides}, 'HASH', 'provides is an object');
for my $ext (sort keys %{ $meta->{provides} })
{
	my $p = $meta->{provides}{$ext};
	ok($p->{file} && -f "$top/$p->{file}", "provides $ext: file $p->{file} exists");
	like($p->{version} // '', $semver, "provides $ext: version is a semantic version");
	ok(!defined $p->{docfile} || -f "$top/$p->{docfile}", "provides $ext: docfile exists");
}

if (exists $meta->{prereqs})
{
	my %phases = map { $_ => 1 } qw(configure build test runtime develop);
	my %relations = map { $_ => 1 } qw(requires recommends suggests conflicts);
	my @bad;
	for my $phase (keys %{ $meta->{prereqs} })
	{
		push @bad, "phase $phase" unless $phases{$phase};
		for my $rel (keys %{ $meta->{prereqs}{$phase} })
		{
			push @bad, "relation $rel" unless $relations{$rel};
			for my $name (keys %{ $meta->{prereqs}{$phase}{$rel} })
			{
				my $v = $meta->{prereqs}{$phase}{$rel}{$name};
				push @bad, "$name version $v" unless $v eq '0' || $v =~ $semver
				  || $v =~ /^(?:[<>=!]=?\s*\d[\d.]*\s*,?\s*)+$/;
			}
		}
	}
	is_deeply(\@bad, [], 'prereqs use the spec\'s phases, relations and versions');
}
ok(!exists $meta->{release_status} || $meta->{release_status} =~ /^(stable|testing|unstable)$/,
	'release_status is stable, testing or unstable');
ok(!exists $meta->{tags} || (ref $meta->{tags} eq 'ARRAY' && !grep { ref $_ || length $_ > 255 } @{ $meta->{tags} }),
	'tags is a list of short strings');

# the version lives in the control file; META.json says the same
my ($control) = slurp("$top/stockx_enrich.control") =~ /^default_version\s*=\s*'([^']+)'/m;
my $derived = join('.', (split /\./, $control), (0) x (3 - scalar(split /\./, $control)));
is($meta->{version}, $derived, "the distribution version is the control file's $control");
is($meta->{provides}{stockx_enrich}{version}, $derived, 'and so is the extension\'s');
ok(-f "$top/sql/stockx_enrich--1.0.sql", 'the 1.0 script, base of the update path, is shipped');
like(slurp("$top/CHANGELOG.md"), qr/^## \Q$control\E\b/m, "CHANGELOG.md has a section for $control");

# ---- PGXN: the current install script, resources, maintainer ---------------

is($meta->{provides}{stockx_enrich}{file}, "sql/stockx_enrich--$control.sql",
	"provides names the full install script of $control");
my $url = qr{^https://[^\s/]+/\S*$};
is(ref $meta->{resources}, 'HASH', 'resources is an object');
like($meta->{resources}{homepage} // '', $url, 'resources: homepage is a URL');
like($meta->{resources}{bugtracker}{web} // '', $url, 'resources: bugtracker web is a URL');
like($meta->{resources}{repository}{url} // '', qr{^(https|git)://\S+$}, 'resources: repository url');
like($meta->{resources}{repository}{web} // '', $url, 'resources: repository web is a URL');
is($meta->{resources}{repository}{type}, 'git', 'resources: repository type is git');
my @bad_res = grep { !/^(homepage|bugtracker|repository|x_.*)$/i } keys %{ $meta->{resources} // {} };
is_deeply(\@bad_res, [], 'resources has only the spec\'s keys');
ok(!grep({ !/^[^<>]+ <[^\s<>@]+@[^\s<>@]+>$/ } @maint), 'every maintainer is "name <email>"');

# ---- the supported majors: one list, and everything agrees with it ---------

my @majors = sort { $a <=> $b }
  map { /^\s*(\d+)\s+\S+/ ? $1 : () } split /\n/, slurp("$top/test/matrix/versions");
ok(@majors >= 1, "test/matrix/versions lists majors: @majors");
my ($oldest, $newest) = ($majors[0], $majors[-1]);

is($meta->{prereqs}{runtime}{requires}{PostgreSQL}, "$oldest.0.0",
	"META.json requires PostgreSQL $oldest.0.0, the oldest listed major");

my ($ctl_min, $ctl_list) = slurp("$top/stockx_enrich.control")
  =~ /^# PostgreSQL (\d+) and later, tested on ([\d, ]+) \(test\/matrix\/versions/m;
is($ctl_min, $oldest, 'the control file\'s comment says the same oldest major');
is_deeply([ split /,\s*/, $ctl_list // '' ], \@majors, 'and the same tested majors');

my ($readme_list) = slurp("$top/README.md") =~ /^Supported: PostgreSQL (\d+(?:, \d+)*(?: and \d+)?)\b/m;
is_deeply([ split /,\s*|\s+and\s+/, $readme_list // '' ], \@majors,
	'README\'s "Supported: PostgreSQL ..." names the listed majors');

SKIP:
{
	skip 'no debian/ directory', 1 unless -d "$top/debian";
	my @pgv = grep { /\S/ && !/^\s*#/ } split /\n/, slurp("$top/debian/pgversions");
	is_deeply(\@pgv, ["$oldest+"], "debian/pgversions builds for $oldest and later");
}

# The Makefile refuses an older server and warns about an unlisted one:
# a pg_config that says another version and answers the rest as the real one.
subtest 'the Makefile checks the major of PG_CONFIG' => sub {
	my $real = $ENV{PG_CONFIG} || 'pg_config';
	my $real_version = `$real --version 2>/dev/null` // '';
	plan skip_all => "no pg_config ($real)" unless $real_version =~ /^PostgreSQL (\d+)/;
	my $real_major = $1;
	my $tmp = tempdir(CLEANUP => 1);
	my $make = sub {
		my ($major) = @_;
		my $fake = "$tmp/pg_config_$major";
		open my $fh, '>', $fake or die "$fake: $!";
		print $fh "#!/bin/sh\n[ \"\$1\" = --version ] && { echo 'PostgreSQL $major.3'; exit 0; }\n",
		  "exec '$real' \"\$@\"\n";
		close $fh;
		chmod 0755, $fake;
		my $out = `make -n -C '$top' PG_CONFIG='$fake' all 2>&1`;
		return ($? >> 8, $out);
	};
	my ($rc, $out) = $make->($oldest - 1);
	isnt($rc, 0, 'PostgreSQL ' . ($oldest - 1) . ': make fails');
	like($out, qr/PostgreSQL \Q@{[$oldest - 1]}\E .*is not supported: stockx_enrich needs PostgreSQL $oldest or later/,
		'with a message that says which majors are supported');
	($rc, $out) = $make->($newest + 1);
	is($rc, 0, 'PostgreSQL ' . ($newest + 1) . ': make goes on');
	like($out, qr/PostgreSQL \Q@{[$newest + 1]}\E is not one of the tested majors/, 'with a warning');
	my $listed = grep { $_ == $real_major } @majors;
	$out = `make -n -C '$top' PG_CONFIG='$real' all 2>&1`;
	is($? >> 8, 0, "PostgreSQL $real_major ($real): make goes on");
	if ($listed)
	{
		unlike($out, qr/not one of the tested majors|not supported/, 'without a warning');
	}
	else
	{
		like($out, qr/not one of the tested majors/, 'with a warning: it is not listed');
	}
};

# ---- make dist: the PGXN zip holds what META.json names --------------------

subtest 'make dist' => sub {
	my $toplevel = `git -C '$top' rev-parse --show-toplevel 2>/dev/null` // '';
	chomp $toplevel;
	plan skip_all => 'not a git checkout (make dist archives git)'
	  unless $? == 0 && $toplevel ne '' && abs_path($toplevel) eq abs_path($top);
	my $tmp = tempdir(CLEANUP => 1);
	# the working tree as it is, through an index of our own (git's index and
	# HEAD are left alone; only unreferenced objects are added)
	my $tree;
	{
		local $ENV{GIT_INDEX_FILE} = "$tmp/index";
		system('git', '-C', $top, 'read-tree', 'HEAD') == 0
		  && system('git', '-C', $top, 'add', '-A') == 0
		  or return fail('git could not index the working tree');
		$tree = `git -C '$top' write-tree`;
		chomp $tree;
	}
	my $zip = "$tmp/dist.zip";
	my $out = `make -s -C '$top' dist DIST_REV=$tree DIST_ZIP='$zip' 2>&1`;
	is($?, 0, 'make dist builds the zip') or diag($out);
	my @names;
	if (my $u = IO::Uncompress::Unzip->new($zip))
	{
		for (my $st = 1; $st > 0; $st = $u->nextStream)
		{
			push @names, $u->getHeaderInfo->{Name};
		}
	}
	else
	{
		fail("cannot read $zip: $UnzipError");
	}
	my %in = map { $_ => 1 } @names;
	my $prefix = "stockx_enrich-$meta->{version}/";
	ok(!grep({ index($_, $prefix) != 0 } @names), "every entry is under $prefix");
	my @named = ('META.json', 'LICENSE', 'Makefile', 'stockx_enrich.control',
		(map { ($_->{file}, $_->{docfile} // ()) } values %{ $meta->{provides} }));
	ok($in{"$prefix$_"}, "the zip holds $_") for @named;
	ok($in{"$prefix$_"}, "and $_ (DATA)") for map { s{^\Q$top\E/}{}r } glob("$top/sql/stockx_enrich--*.sql");
};

done_testing();
